// SGEMM and convolution: the public kernel entry points. Each dispatches on
// fd::active_isa() to the scalar reference (kernels/reference), AVX2/FMA
// (kernels/avx2) or AVX-512 (kernels/avx512) variant. Kernels never throw and
// never allocate JS-visible memory; shapes are validated by the ops before.
// Determinism: the reduction (K) dimension is never split across threads, so
// results do not depend on the thread count.
// Precision: sgemm and sgemm_batched (matmul, linear) follow fd::matmul_precision() when they
// run: "medium" rounds both operands to bfloat16 (float32 accumulation) on CPUs with
// AVX512-BF16 under the AVX-512 ISA (and in the scalar reference on such CPUs); everywhere
// else, and for convolutions, they compute in float32 (more precision than asked, never less).
#pragma once
#include <cstdint>

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
};
void sgemm(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
           const GemmEpilogue& epilogue = {});

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

// y = conv(x, w) + bias (bias may be null). Overwrites y.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
// gx = dL/dx given gy = dL/dy. Overwrites gx.
void conv2d_backward_input(const Conv2dShape& s, const float* gy, const float* w, float* gx);
// gw = dL/dw (overwrites), gb = dL/dbias (overwrites; may be null).
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gb);

}  // namespace fd::kernels
