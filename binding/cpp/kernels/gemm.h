// SGEMM and convolution: the public kernel entry points. Each dispatches on
// fd::active_isa() to the scalar reference (kernels/reference), AVX2/FMA
// (kernels/avx2) or AVX-512 (kernels/avx512) variant. Kernels never throw and
// never allocate JS-visible memory; shapes are validated by the ops before.
// Determinism: the reduction (K) dimension is never split across threads, so
// results do not depend on the thread count.
// Precision: sgemm and sgemm_batched (matmul, linear) follow fd::matmul_precision() when they
// run: "medium" rounds both operands to bfloat16 (float32 accumulation) on CPUs with
// AVX512-BF16 under the AVX-512 ISA (and in the scalar reference on such CPUs), and so do the
// GEMMs of Winograd convolutions (winograd.h); everywhere else, and for direct convolutions,
// they compute in float32 (more precision than asked, never less).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "kernels/vector.h"

namespace fd::kernels {

// A strided matrix view: element (i, j) is p[i * rs + j * cs]. A transposed
// operand is just a view with swapped strides.
struct MatView {
  const float* p;
  int64_t rs, cs;
};

// C[M,N] = alpha * A[M,K] · B[K,N] + beta * C  (+ bias_row[i]) (+ bias_col[j]).
// C is row-major with leading dimension ldc. beta == 0 means C is write-only
// (never read, so NaN garbage in C does not propagate). Biases may be null.
struct GemmEpilogue {
  const float* bias_row = nullptr;  // length M, added to every element of row i
  const float* bias_col = nullptr;  // length N, added to every element of column j
  // Then applied to every element: on the CPU to each micro-tile right after its last K block, while it is in L1
  // (kernels::unary_rows, one call per tile); the values are kernels::unary's (parameters 0).
  std::optional<Unary> activation;
  // Then, when `residual` is set (on each row block of C after its last K block), C = C + residual, or
  // C·gate + residual with a gate (adaLN-Zero's gated residual h + gate·branch; the bits of kernels::binary Add /
  // kernels::mul_add): `residual` has C's shape and ldc; row i takes gate row ⌊i / gate_period⌋, gate_ld apart.
  const float* residual = nullptr;
  const float* gate = nullptr;
  int64_t gate_period = 1, gate_ld = 0;
};
void sgemm(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
           const GemmEpilogue& epilogue = {});

// An operand packed once into the micro-kernel's panel layout, for a weight used by many calls
// (sampling): a linear layer's Wᵀ as the B operand, a convolution's weight rows (or its 16
// Winograd-transformed matrices) as the A operand. With it the GEMM skips the per-call pack,
// which for few rows (linear at batch 1) or few output pixels (a 7×7 conv) costs a third of
// the work. Results are bit-identical to
// the unpacked calls. A pack is tied to the kernel set it was made for (ISA and matmul
// precision), and the *_fits functions say whether it still applies.
struct PackedMatrix {
  const void* kernels = nullptr;  // the impl::KernelSet it was packed for
  char operand = 0;               // 'A' (rows × K, panels of mr rows) or 'B' (K × cols, panels of nr)
  char source = 0;                // what was packed: 0 the weight itself, 'W' its Winograd transform
  int64_t K = 0, MN = 0, KC = 0;  // MN: rows of A or columns of B; KC: the K block length
  int64_t P = 0;                  // MN rounded up to the panel width
  int64_t count = 1;              // matrices packed (Winograd: 16), each at data + i·stride
  int64_t stride = 0;             // floats between two of them (K·P)
  float* data = nullptr;
  size_t bytes = 0;
  PackedMatrix() = default;
  PackedMatrix(const PackedMatrix&) = delete;
  PackedMatrix& operator=(const PackedMatrix&) = delete;
  ~PackedMatrix();
};
// B [K, N] packed for sgemm_packed under the current kernel set; null under Isa::Scalar.
// Throws ERR_MEMORY when the host is out of memory.
std::shared_ptr<const PackedMatrix> pack_b_once(int64_t K, int64_t N, MatView B);
bool packed_b_fits(const PackedMatrix& packed, int64_t K, int64_t N);
// sgemm with B's panels from pack_b_once (packed_b_fits must hold); the view B it was packed
// from is still read when scratch memory for A cannot be had.
void sgemm_packed(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, const PackedMatrix& packed,
                  float beta, float* C, int64_t ldc, const GemmEpilogue& epilogue = {});

// Batched: matrix b uses A.p + b * stride_a, B.p + b * stride_b, C + b * stride_c
// (stride 0 broadcasts an operand over the batch).
void sgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, MatView A, int64_t stride_a, MatView B,
                   int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c);

// 2-D convolution, NCHW input, weight [OC, C/groups, KH, KW], output [N, OC, OH, OW]
// with OH = (H + 2*pad_h - dil_h*(KH-1) - 1) / stride_h + 1 (same for W).
struct Conv2dShape {
  int64_t N, C, H, W;
  int64_t OC, KH, KW;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  int64_t groups = 1;
  int64_t OH() const { return (H + 2 * pad_h - dil_h * (KH - 1) - 1) / stride_h + 1; }
  int64_t OW() const { return (W + 2 * pad_w - dil_w * (KW - 1) - 1) / stride_w + 1; }
};

// The family the 3×3 fast paths compute (Winograd, the direct 3×3 kernel): a 3×3 kernel, stride 1, dilation 1,
// groups 1, the same padding of 0 or 1 on both axes, a non-empty output.
bool conv3x3_stride1(const Conv2dShape& s);

// y = conv(x, w) + bias (bias may be null). Overwrites y. packed_w (optional): w from
// pack_conv_weight_once, used when packed_conv_weight_fits(s).
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                    const PackedMatrix* packed_w = nullptr);
// The weight packed as conv2d_forward's GEMM reads it — its rows (direct path) or its Winograd
// transform U (wino::pack_weight_once) — choosing the path as if the pack were kept; null when no
// pack applies (groups > 1, Isa::Scalar).
std::shared_ptr<const PackedMatrix> pack_conv_weight_once(const Conv2dShape& s, const float* w);
bool packed_conv_weight_fits(const PackedMatrix& packed, const Conv2dShape& s);
// The path conv2d_forward takes for s under the current settings, named as the conv algorithm
// setting names it ("direct" for the implicit GEMM and the scalar reference); keeps_packed: the
// weight is kept packed across calls (ops/packed_weight.h).
const char* conv2d_forward_path(const Conv2dShape& s, bool keeps_packed);
// gx = dL/dx given gy = dL/dy. Overwrites gx.
void conv2d_backward_input(const Conv2dShape& s, const float* gy, const float* w, float* gx);
// gw = dL/dw (overwrites), gb = dL/dbias (overwrites; may be null).
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gb);

}  // namespace fd::kernels
