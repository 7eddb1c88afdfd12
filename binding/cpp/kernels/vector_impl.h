// Internal seam between the baseline dispatcher (kernels/vector.cc) and the
// per-ISA implementations of the vector kernels (reference / avx2 / avx512).
// Every ISA exports one table of plain function pointers that work SERIALLY on
// a range; vector.cc does the threading and the fixed-order reductions. Nothing
// here is a template or an inline function, so files compiled with different
// -m flags never share an instantiation (ODR safety).
#pragma once
#include <cstdint>

#include "kernels/vector.h"

namespace fd::kernels {

struct VectorKernels {
  // Elementwise on [0, n).
  void (*unary)(Unary op, int64_t n, const float* x, float* y, float a, float b);
  void (*unary_backward)(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a,
                         float b);
  void (*binary)(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out);

  // Group norm on ONE (n, g) block: x/y/gy/gx point at its Cg*HW contiguous values,
  // gamma/beta at its Cg channels (may be null). Forward writes *mean, *rstd.
  void (*group_norm_fwd_block)(int64_t Cg, int64_t HW, float eps, const float* x, const float* gamma,
                               const float* beta, bool silu, float* y, float* mean, float* rstd);
  // Backward writes gx and per-channel partial sums for this n:
  // dgamma[c] = Σ_hw dy·x̂, dbeta[c] = Σ_hw dy (dy = gradient before the affine's output, after SiLU backward).
  void (*group_norm_bwd_block)(int64_t Cg, int64_t HW, const float* x, const float* gamma, const float* beta,
                               bool silu, float mean, float rstd, const float* gy, float* gx, double* dgamma,
                               double* dbeta);

  // Layer norm over `rows` rows of length D.
  void (*layer_norm_fwd_rows)(int64_t rows, int64_t D, float eps, const float* x, const float* gamma,
                              const float* beta, float* y, float* mean, float* rstd);
  void (*layer_norm_bwd_rows)(int64_t rows, int64_t D, const float* x, const float* gamma, const float* mean,
                              const float* rstd, const float* gy, float* gx);
  // ggamma/gbeta for columns [d0, d1) reduced over all M rows in row order (either output may be null).
  void (*layer_norm_param_grad)(int64_t M, int64_t D, int64_t d0, int64_t d1, const float* x, const float* mean,
                                const float* rstd, const float* gy, float* ggamma, float* gbeta);

  void (*softmax_fwd_rows)(int64_t rows, int64_t D, const float* x, float* y, bool log);
  void (*softmax_bwd_rows)(int64_t rows, int64_t D, const float* y, const float* gy, float* gx, bool log);

  void (*adam)(int64_t n, float* param, const float* grad, float* m, float* v, const AdamParams& p);
  void (*sgd)(int64_t n, float* param, const float* grad, float* buf, float lr, float momentum, float weight_decay,
              bool nesterov, float grad_scale);
  void (*ema)(int64_t n, float* ema, const float* param, float decay);
  double (*sum_squares)(int64_t n, const float* x);  // one chunk, serial
  int64_t (*sanitize)(int64_t n, float* x);
  // out[i] = x[i·sx]·y[i·sy] + z[i·sz] in one rounding (fma), strides ∈ {0, 1}.
  void (*mul_add)(int64_t n, const float* x, int64_t sx, const float* y, int64_t sy, const float* z, int64_t sz,
                  float* out);
  // unary (parameters 0) on `rows` rows of n, x ldx and y ldy apart (x may be y): one call per GEMM micro-tile.
  void (*unary_rows)(Unary op, int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy);
  // kernels::gated_add_rows: one call per GEMM row block (and gate row).
  void (*gated_add_rows)(int64_t rows, int64_t n, const float* x, int64_t ldx, const float* gate, const float* r,
                         int64_t ldr, float* y, int64_t ldy);
};

namespace ref {
const VectorKernels* vector_table();
// The serial oracle for whole problems (used by the reference table and by tests/benchmarks).
void unary(Unary op, int64_t n, const float* x, float* y, float a, float b);
void unary_backward(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a, float b);
void binary(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out);
}  // namespace ref

namespace avx2 {
const VectorKernels* vector_table();
}
namespace avx512 {
const VectorKernels* vector_table();
}

}  // namespace fd::kernels
