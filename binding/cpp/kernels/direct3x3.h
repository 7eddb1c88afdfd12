// Direct 3×3 convolution with output channels in the vector lanes (stride 1, dilation 1,
// groups 1, padding 0 or 1), for small maps:
//   y[n, o, i, j] = bias[o] + Σ_c Σ_kh,kw w[o, c, kh, kw] · xp[n, c, i + kh, j + kw]
// where xp is x zero-padded by `pad`. The weights are packed in blocks of 32 output channels,
// wb[block][c][kh·3 + kw][32]; a strip of up to 14 output pixels (one row of ≤ 14, or two rows
// of ≤ 7) holds 14 × 32 sums in 28 vector registers, and each (c, tap) step loads two weight
// vectors and broadcasts each of the strip's input pixels once: 28 FMAs per 16 loads, every
// weight byte read once per strip, no transform. On one 7×7 image the implicit GEMM's and
// Winograd's products have 49 or 16 columns; here the 9·C-long reduction streams the raw
// weights (Winograd's kept F(2×2) transform is 1.8× their bytes). Each output element is one
// strip's sum in a fixed (c, kh, kw) order, so every thread count gives the same bits.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/gemm.h"

namespace fd::kernels::d3 {

constexpr int kBlock = 32;       // output channels per weight block (two 16-lane vectors)
constexpr int kMaxPixels = 14;   // output pixels per strip (28 accumulators)

struct Kernels {
  // out[(r·pw + p)·32 + lane] = Σ_c Σ_kh,kw x[c·plane + (r + kh)·wp + p + kw] · wb[(c·9 + kh·3 + kw)·32 + lane]
  // for r < rows, p < pw; rows ∈ {1, 2}, rows · pw ≤ 14. x points at the strip's first input
  // pixel (the padded plane's row and column of its first output); wb at one block (64-byte aligned).
  void (*strip)(int rows, int pw, const float* x, int64_t plane, int64_t wp, int64_t C, const float* wb,
                float* out);
};

namespace avx512 {
const Kernels* kernels();
}

// Whether conv2d_forward takes this path for s under the conv algorithm setting (core/precision.h):
// "direct3x3" whenever it can compute s (the shapes above, the AVX-512 kernels); "auto" also needs
// ≥ 2 threads, ≥ 16 input and output channels, float32 GEMMs elsewhere (not matmul precision "medium")
// and at most kAutoMaxPixels output pixels over the batch (see direct3x3.cc).
bool chosen(const Conv2dShape& s);

// The packed weight blocks (PackedMatrix with source 'D') for a weight used by many calls, and
// whether such a pack fits s.
std::shared_ptr<const PackedMatrix> pack_weight_once(const Conv2dShape& s, const float* w);
bool packed_weight_fits(const PackedMatrix& packed, const Conv2dShape& s);

// y = conv(x, w) + bias for a shape chosen(s) can compute; packed (optional, packed_weight_fits)
// skips packing w. Returns false (nothing written) when scratch memory cannot be had.
bool forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
             const PackedMatrix* packed = nullptr);

}  // namespace fd::kernels::d3
