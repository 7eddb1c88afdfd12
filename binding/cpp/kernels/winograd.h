// Winograd convolution for 3×3, stride 1, dilation 1, groups 1 convs (Lavin & Gray 2016):
// Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A per m×m output tile, m = 2 (F(2×2, 3×3): α = 4, 16 products
// per tile) or m = 4 (F(4×4, 3×3): α = 6, 36 products; 2.25 multiplications per output
// instead of 4, a few more ulps of rounding).
//   U[k][oc][ic] = (G g Gᵀ)_k               (α² matrices OC × IC, per call or kept packed)
//   V[k][ic][t]  = (Bᵀ d_t B)_k             (α² matrices IC × T, per chunk of tiles)
//   M[k]         = U[k] · V[k]              (α² GEMMs on the engine's packed SGEMM; with bfloat16
//                                            operands under matmul precision "medium", as sgemm)
//   y            = Aᵀ M A + bias            (partial tiles cropped)
// Tiles are taken in chunks of whole tile rows (T tiles) so V and M stay in cache;
// each thread runs whole chunks (smaller ones when there are fewer than threads), or,
// with very few tiles, a share of the output channels of every chunk.
// The GEMM reduction (IC) is never split and every transform is element-wise, so
// the result is bitwise identical for any thread count and chunking. Only for the SIMD ISAs; Isa::Scalar keeps the direct reference.
#pragma once
#include <cstdint>

#include "kernels/gemm_impl.h"

namespace fd::kernels {
namespace wino {

// Per-ISA transform kernels for one tile size (plain loops compiled with the ISA's flags,
// from simd/winograd_kernels.inl for m = 2 and simd/winograd4_kernels.inl for m = 4). Tile
// rows r ∈ [r0, r1) over the batch: image n = r / TH, tile row th = r % TH; tile
// t = (r − r0)·TW + tw in a chunk of T tiles.
struct Kernels {
  int m;  // output tile side; α = m + 2, α² matrices
  // KS: the stride between the α² matrices (padded so that their streams do not
  // share cache sets).
  // U[k·KS + p] for p ∈ [p0, p1) over P = OC·IC (oc, ic) pairs; w[p·9 + kh·3 + kw].
  void (*weight)(const float* w, int64_t P, int64_t p0, int64_t p1, int64_t KS, float* U);
  // V[k·KS + c·T + t] for c ∈ [c0, c1); x is the whole batch [N, C, H, W]; input
  // tile rows start at m·th − pad (zero outside). tmp: tmp_floats(T, TW, W) floats.
  void (*input)(const float* x, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t TH, int64_t TW, int64_t r0,
                int64_t r1, int64_t c0, int64_t c1, int64_t T, int64_t KS, float* V, float* tmp);
  // y[n, oc, m·th + i, m·tw + j] (inside OH × OW) = (Aᵀ M A)_ij + bias[oc] for oc ∈ [o0, o1);
  // M[k·KS + oc·T + t]; bias may be null. tmp: tmp_floats(T, TW, W) floats.
  void (*output)(const float* M, int64_t OC, int64_t OH, int64_t OW, int64_t TH, int64_t TW, int64_t r0, int64_t r1,
                 int64_t o0, int64_t o1, int64_t T, int64_t KS, const float* bias, float* y, float* tmp);
  // Scratch floats of input / output for chunks of up to T tiles (whole tile rows of TW) of an
  // input W wide.
  int64_t (*tmp_floats)(int64_t T, int64_t TW, int64_t W);
};

namespace avx2 {
const Kernels* kernels(int m);
}
namespace avx512 {
const Kernels* kernels(int m);
}

// Benchmarks / experiments: minimum IC and OC for the Winograd path (< 0: off;
// 0: unchanged) and the V + M scratch target in floats (≤ 0: unchanged). Defaults
// from FASTDIFF_WINO_MIN_CH / FASTDIFF_WINO_CHUNK_FLOATS when set.
void tune(int64_t min_channels, int64_t chunk_floats);

// Stride (floats) between the α² matrices of n floats each: a multiple of 16 floats
// with an odd number of 64-byte lines, so the streams fall in distinct cache sets.
int64_t kstride(int64_t n);

// The output tile side conv2d_forward should use for this shape under the conv
// algorithm setting (core/precision.h), 0 for the direct path: "direct" never;
// "winograd" (2) and "winograd4" (4) whenever the path can compute it (3×3, stride 1,
// dilation 1, groups 1, padding 0 or 1, a SIMD ISA); "auto" also needs IC, OC ≥ 32 and
// enough output tiles — fewer when U is kept packed across calls (`u_kept`), and picks
// the tile size by the shape (see winograd.cc).
int tile(const Conv2dShape& s, bool u_kept = false);

// U = G g Gᵀ of the weights for tile(s, true), packed once as the α² GEMMs' A operands
// (PackedMatrix with source 'W', count α²) for a weight used by many calls; and whether
// such a pack fits s (and the tile size chosen now).
std::shared_ptr<const PackedMatrix> pack_weight_once(const impl::KernelSet& ks, const Conv2dShape& s, const float* w);
bool packed_weight_fits(const PackedMatrix& packed, const impl::KernelSet& ks, const Conv2dShape& s);

// y = conv(x, w) + bias with tile side m (2 or 4, computable for s); ks is the active
// kernel set. packed_u (optional, packed_weight_fits): w's U for m, so the per-call weight
// transform and pack are skipped (bit-identical results). Returns false (nothing written)
// when scratch memory cannot be had.
bool conv3x3_forward(const impl::KernelSet& ks, const Conv2dShape& s, int m, const float* x, const float* w,
                     const float* bias, float* y, const PackedMatrix* packed_u = nullptr);

}  // namespace wino
}  // namespace fd::kernels
