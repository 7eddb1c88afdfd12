// Elementwise, normalization, softmax and optimizer kernels on contiguous float
// arrays. Public entry points dispatch on fd::active_isa(); every function has a
// scalar reference in kernels/reference and AVX2/AVX-512 variants. Kernels never
// throw; callers validate shapes. All outputs are overwritten (never accumulated)
// unless the comment says otherwise. In-place use (out == input) is allowed for
// unary, binary and optimizer kernels.
#pragma once
#include <cstdint>

namespace fd::kernels {

// ---- elementwise unary: y = f(x; a, b) ----
enum class Unary : int {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Square, Sign, Sigmoid, Softplus, Tanh, Silu, GeluTanh, GeluErf, Relu,
  Affine,    // a*x + b
  PowScalar, // x^a (x<0 with non-integer a gives NaN, like std::pow)
  Clamp,     // min(max(x, a), b)
  IsNan,     // 1 if x is NaN else 0
  NanToNum,  // NaN → a, +Inf → b, -Inf → -b
  Count
};
void unary(Unary op, int64_t n, const float* x, float* y, float a = 0.f, float b = 0.f);
// unary (parameters 0) on a block of `rows` rows of n: row i of y (ldy apart) = f(row i of x, ldx apart); x may
// be y. Serial (a GEMM tile, from its thread).
void unary_rows(Unary op, int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy);
// Row i of y (ldy apart) = row i of x·gate + row i of r (mul_add's bits), or x + r without a gate (binary Add's);
// gate is one row of n for all rows. x may be y. Serial (a GEMM row block's residual).
void gated_add_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, const float* gate, const float* r, int64_t ldr,
                    float* y, int64_t ldy);
// gx = gy * dy/dx evaluated at x (y = f(x) is given for ops whose derivative is
// cheaper from y: Exp, Sqrt, Rsqrt, Sigmoid, Tanh). Sign/IsNan/NanToNum have
// zero gradient (NanToNum passes gy where x is finite). Clamp passes gy where
// a <= x <= b.
void unary_backward(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a = 0.f,
                    float b = 0.f);

// ---- elementwise binary with scalar broadcast: out[i] = f(a[i*sa], b[i*sb]), sa, sb ∈ {0, 1} ----
enum class Binary : int { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Count };
void binary(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out);

// Names of the ops ("exp", "gelu_tanh", "pow", ...): used in error messages, by the
// JS binding to parse op names, and by the benches. parse_* return false if unknown.
const char* unary_name(Unary op);
const char* binary_name(Binary op);

// ---- out[i] = x[i*sx]·y[i*sy] + z[i*sz] (one rounding: fma), sx, sy, sz ∈ {0, 1} ----
void mul_add(int64_t n, const float* x, int64_t sx, const float* y, int64_t sy, const float* z, int64_t sz, float* out);
bool parse_unary(const char* name, Unary* out);
bool parse_binary(const char* name, Binary* out);

// ---- normalization ----
// Group norm over x [N, C, HW] with G groups (C % G == 0): per (n, g) mean and
// biased variance over (C/G)·HW values, rstd = 1/sqrt(var + eps);
// y = (x - mean)·rstd·gamma[c] + beta[c], then y = silu(y) if `silu`.
// gamma/beta may be null (identity). mean/rstd [N*G] are written for backward.
void group_norm_forward(int64_t N, int64_t C, int64_t HW, int64_t G, float eps, const float* x, const float* gamma,
                        const float* beta, bool silu, float* y, float* mean, float* rstd);
// Overwrites gx; ggamma/gbeta (length C, may be null) are overwritten too.
void group_norm_backward(int64_t N, int64_t C, int64_t HW, int64_t G, const float* x, const float* gamma,
                         const float* beta, bool silu, const float* mean, const float* rstd, const float* gy, float* gx,
                         float* ggamma, float* gbeta);

// Layer norm over the last dimension of x [M, D]; gamma/beta may be null. They hold one row [D]
// per `affine_rows` consecutive rows of x (≤ 0 or ≥ M: one row for all; M / affine_rows rows of D
// otherwise, e.g. one per sample for DiT's adaptive norm), and so do ggamma/gbeta.
void layer_norm_forward(int64_t M, int64_t D, float eps, const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd, int64_t affine_rows = 0);
void layer_norm_backward(int64_t M, int64_t D, const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* ggamma, float* gbeta, int64_t affine_rows = 0);

// Softmax (or log-softmax) over the last dimension of x [M, D].
void softmax_forward(int64_t M, int64_t D, const float* x, float* y, bool log);
// From the forward output y: gx = y·(gy − Σ gy·y) (softmax) or gy − softmax·Σ gy (log).
void softmax_backward(int64_t M, int64_t D, const float* y, const float* gy, float* gx, bool log);

// ---- optimizers (fused: one pass over param, grad and state) ----
struct AdamParams {
  float lr, beta1, beta2, eps, weight_decay;
  bool decoupled;     // AdamW: p -= lr·wd·p; else L2: g += wd·p
  float bias_c1;      // 1 - beta1^t
  float bias_c2;      // 1 - beta2^t
  float grad_scale;   // g is multiplied by this first (global-norm clipping)
};
// m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²; p -= lr · (m/c1) / (sqrt(v/c2) + eps)
void adam_step(int64_t n, float* param, const float* grad, float* m, float* v, const AdamParams& p);
// buf = momentum·buf + g (buf may be null when momentum == 0); p -= lr·(nesterov ? g + momentum·buf : buf)
void sgd_step(int64_t n, float* param, const float* grad, float* buf, float lr, float momentum, float weight_decay,
              bool nesterov, float grad_scale);
// ema = decay·ema + (1 − decay)·param
void ema_update(int64_t n, float* ema, const float* param, float decay);
// Σ x² accumulated in double (fixed chunking: independent of the thread count).
double sum_squares(int64_t n, const float* x);
// Replaces NaN/±Inf by 0; returns how many were replaced.
int64_t sanitize_nonfinite(int64_t n, float* x);

}  // namespace fd::kernels
