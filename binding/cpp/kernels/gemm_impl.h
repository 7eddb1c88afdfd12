// Internal declarations shared by the SGEMM / conv2d driver (gemm.cc, conv2d.cc,
// compiled at the x86-64-v2 baseline), the scalar reference (reference/gemm_ref.cc)
// and the ISA micro-kernel files (avx2/gemm_avx2.cc, avx512/gemm_avx512.cc).
//
// ODR rule: this header declares only plain structs (no member functions, no
// inline functions) and plain functions, so the ISA files can include it without
// emitting any shared inline code compiled with AVX flags.
#pragma once
#include <cstdint>

#include "kernels/gemm.h"

namespace fd::kernels {

namespace ref {
// Oracle: plain loops, every dot product accumulated in double and rounded once.
void sgemm(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
           const float* bias_row, const float* bias_col);
// Matmul precision "medium": A and B rounded to bfloat16 (bf16_bits), products summed in double.
void sgemm_bf16(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
                const float* bias_row, const float* bias_col);
// The bfloat16 bits of x as vcvtne2ps2bf16 rounds it: nearest even, NaN stays (quiet) NaN, and
// denormal inputs count as zero (the instruction ignores MXCSR and treats them so).
uint16_t bf16_bits(float x);
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_input(const Conv2dShape& s, const float* gy, const float* w, float* gx);
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gb);
}  // namespace ref

namespace impl {

// Epilogue of one micro-tile. `first` (the first K block): C = alpha·acc + beta·C
// (beta == 0: C not read) + bias_row[i] + bias_col[j]; otherwise C += alpha·acc.
// Bias pointers are already offset to the tile's first row / column (or null).
struct MicroEpi {
  float alpha, beta;
  const float* bias_row;
  const float* bias_col;
  int first;
  // May be null: memory this tile fetches into L2 while it computes, prefetch + k·prefetch_step at step k
  // (the next kept B panel's slice, or the next kept A panel; the AVX-512 float32 kernel, others ignore it).
  const float* prefetch = nullptr;
  int64_t prefetch_step = 0;
};

// Implicit im2col source (forward conv): B(k, j) with k = (c, kh, kw) over C·KH·KW
// and j = (oh, ow) over OH·OW; B = x[c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw] or 0
// outside the image. Padding may be negative (crop).
struct ConvSrc {
  const float* x;  // first channel of the image (group)
  int64_t C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW;
};

// Weight-gradient source on a zero-padded channels-last image xt [Hp][Wp][C]:
// B(k, j) with k = (oh, ow) over OH·OW and j = (kh, kw, c) over KH·KW·C;
// B = xt[(oh·sh + kh·dh)·Wp + ow·sw + kw·dw][c].
struct ConvTSrc {
  const float* xt;
  int64_t C, Wp, KH, KW, sh, sw, dh, dw, OW;
};

// One ISA's kernel set. Packed layouts: an A panel is kc × mr floats (k-major,
// rows beyond the matrix zero-filled); panel p of a packed block starts at
// p·mr·kc. A B panel is kc × nr floats likewise. Block sizes: kc (K), mc (rows of
// A kept in L2, multiple of mr), nc (columns of B kept in L3, multiple of nr).
struct KernelSet {
  int mr, nr;
  int64_t kc, mc, nc;
  // acc = A_panel · B_panel over kc; writes the m × n (m ≤ mr, n ≤ nr) corner of C.
  void (*micro)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, const MicroEpi* e);
  // p points at A(i0, k0): element (i, k) = p[i·rs + k·cs]; packs mc rows × kc.
  void (*pack_a)(const float* p, int64_t rs, int64_t cs, int64_t mc, int64_t kc, float* dst);
  // p points at B(k0, j0): element (k, j) = p[k·rs + j·cs]; packs kc × nc.
  void (*pack_b)(const float* p, int64_t rs, int64_t cs, int64_t kc, int64_t nc, float* dst);
  void (*pack_b_conv)(const ConvSrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst);
  void (*pack_b_convt)(const ConvTSrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst);
  // Optional (may be null): packs the B panel (k0, j0, n columns, n ≤ nr) of an
  // implicit-im2col source into bdst exactly as pack_b_conv would, and in the same
  // pass computes the first micro-tile (m rows of A panel a) into c, with the same
  // arithmetic as micro. Returns 0 (nothing done) when the shape is unsupported.
  int (*conv_first)(const ConvSrc* s, int64_t k0, int64_t kc, int64_t j0, int n, const float* a, float* bdst,
                    float* c, int64_t ldc, int m, const MicroEpi* e);
  int (*convt_first)(const ConvTSrc* s, int64_t k0, int64_t kc, int64_t j0, int n, const float* a, float* bdst,
                     float* c, int64_t ldc, int m, const MicroEpi* e);
  // dst[hp][wp][c] (Hp × Wp × C) = x[c][hp − ph][wp − pw], 0 outside the image.
  void (*to_nhwc)(const float* x, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t Hp, int64_t Wp,
                  float* dst);
  // K block for implicit-im2col B (conv), where one long K block pays off (fewer
  // C reloads and table set-ups; the packed panel is read from L2 well enough).
  int64_t kc_conv;
  // Row block (A rows kept in L2) for conv sources (BSource kind 1 and 2); 0: mc.
  int64_t mc_conv;
  // Optional (may be null): a full mr × nr tile of the first K block with β = 0 (the caller's to ensure), like
  // micro, then `op` applied to each value in registers, with the bits unary_rows would give. Returns false
  // (nothing done) for an op it does not apply; then the tile is computed as usual.
  bool (*micro_act)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, const MicroEpi* e, Unary op) =
      nullptr;
};

namespace avx2 {
const KernelSet* kernel_set();
}
namespace avx512 {
const KernelSet* kernel_set();
const KernelSet* bf16_kernel_set();  // sgemm only (no conv sources); needs AVX512-BF16
}

// ---- driver (gemm.cc), used by conv2d.cc ----
// Source of the B operand for the driver.
struct BSource {
  int kind;  // 0: strided matrix, 1: ConvSrc, 2: ConvTSrc
  const float* p;
  int64_t rs, cs;
  const ConvSrc* conv;
  const ConvTSrc* convt;
  // kind 0 only, may be null: B already packed (pack_b_once) for this kernel set; the panel
  // of K block pc (starting at k = pc) and columns from j (a multiple of nr) is at
  // packed + pc·packed_np + j·kc.
  const float* packed = nullptr;
  int64_t packed_np = 0;
};
struct ASource {
  const float* p;
  int64_t rs, cs;
  // May be null: A already packed (PackedMatrix 'A' for this kernel set and K block); the
  // panel of K block pc (starting at k = pc) and rows from i (a multiple of mr) is at
  // packed + pc·packed_mp + i·kc.
  const float* packed = nullptr;
  int64_t packed_mp = 0;
  // May be null: a kept A of the same layout that the caller multiplies next (Winograd's next U_k), whose
  // first panel the last tile fetches into L2.
  const float* prefetch_next = nullptr;
};

// K block length for a K split into blocks of at most kc_max: balanced (no tiny tail), a
// multiple of 4, and a function of K alone (determinism across thread counts).
int64_t k_block(int64_t K, int64_t kc_max);
// Packs rows × K of A (operand 'A', panels of mr rows) or K × cols of B ('B', panels of nr)
// in K blocks of KC, as gemm_block would per call; `count` such matrices, the i-th read from
// p + i·p_stride (source: PackedMatrix::source). Throws ERR_MEMORY.
std::shared_ptr<const PackedMatrix> pack_once(const KernelSet& ks, char operand, int64_t K, int64_t MN, int64_t KC,
                                              const float* p, int64_t rs, int64_t cs, int64_t count = 1,
                                              int64_t p_stride = 0, char source = 0);
bool packed_fits(const PackedMatrix& packed, const KernelSet* ks, char operand, int64_t K, int64_t MN, int64_t KC,
                 int64_t count = 1, char source = 0);
// The kernel set for the active ISA, or null for Isa::Scalar.
const KernelSet* active_kernels();
// Whether sgemm rounds its operands to bf16 now: matmul precision "medium" on a CPU with AVX512-BF16
// under the AVX-512 kernels (the bf16 set) or the scalar ones (the bf16 oracle, so "scalar" stays the
// reference of whatever the SIMD path computes). The set sgemm uses: the bf16 set then, else
// active_kernels().
bool matmul_in_bf16();
const KernelSet* matmul_kernels();

// Computes the [m0, m1) × [n0, n1) block of C = alpha·A·B + beta·C + biases on the
// calling thread (K never split). Handles K == 0 / alpha == 0.
// finish (may be null): the GemmEpilogue whose activation / gated residual each row block gets after its last
// K block (its biases are the bias_row / bias_col arguments).
void gemm_block(const KernelSet& ks, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha,
                const ASource& A, const BSource& B, float beta, float* C, int64_t ldc, const float* bias_row,
                const float* bias_col, const GemmEpilogue* finish = nullptr);

// Whole C, threaded over M/N blocks with the global pool (inline when nested).
void gemm_threaded(const KernelSet& ks, int64_t M, int64_t N, int64_t K, float alpha, const ASource& A,
                   const BSource& B, float beta, float* C, int64_t ldc, const float* bias_row, const float* bias_col,
                   const GemmEpilogue* finish = nullptr);

// Thread split helpers: a tm × tn grid over (M, N) in micro-tile units.
// Ties (equal per-thread tiles) go to the column split, or to the row split with prefer_rows.
void split_2d(int64_t M, int64_t N, int64_t mr, int64_t nr, int T, int* tm, int* tn, bool prefer_rows = false);
void block_range(int64_t total, int64_t unit, int parts, int idx, int64_t* begin, int64_t* end);

}  // namespace impl
}  // namespace fd::kernels
