// Scalar reference (the oracle) for the vector kernels: plain loops, <cmath>,
// transcendental functions evaluated in double and rounded once to float,
// norm/softmax statistics accumulated in double.
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/vector_impl.h"

namespace fd::kernels::ref {
namespace {

constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluC = 0.044715;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

inline double sigmoid_d(double x) { return 1.0 / (1.0 + std::exp(-x)); }

inline float unary_one(Unary op, float xf, float a, float b) {
  const double x = xf;
  switch (op) {
    case Unary::Neg: return -xf;
    case Unary::Exp: return static_cast<float>(std::exp(x));
    case Unary::Log: return static_cast<float>(std::log(x));
    case Unary::Sqrt: return std::sqrt(xf);
    case Unary::Rsqrt: return static_cast<float>(1.0 / std::sqrt(x));
    case Unary::Abs: return std::fabs(xf);
    case Unary::Square: return xf * xf;
    case Unary::Sign: return xf > 0.f ? 1.f : (xf < 0.f ? -1.f : xf);
    case Unary::Sigmoid: return static_cast<float>(sigmoid_d(x));
    case Unary::Softplus: return xf > 20.f ? xf : static_cast<float>(std::log1p(std::exp(x)));
    case Unary::Tanh: return static_cast<float>(std::tanh(x));
    case Unary::Silu: return static_cast<float>(x * sigmoid_d(x));
    case Unary::GeluTanh: {
      // 0.5x(1 + tanh(u)) == x·sigmoid(2u), without the cancellation for x << 0
      const double u = kSqrt2OverPi * (x + kGeluC * x * x * x);
      return static_cast<float>(x * sigmoid_d(2.0 * u));
    }
    case Unary::GeluErf: return static_cast<float>(0.5 * x * std::erfc(-x * kInvSqrt2));
    case Unary::Relu: return xf <= 0.f ? 0.f : xf;
    case Unary::Affine: return a * xf + b;
    case Unary::PowScalar: return std::pow(xf, a);
    case Unary::Clamp: {
      float r = xf < a ? a : xf;
      return r > b ? b : r;
    }
    case Unary::IsNan: return std::isnan(xf) ? 1.f : 0.f;
    case Unary::NanToNum:
      if (std::isnan(xf)) return a;
      if (std::isinf(xf)) return xf > 0 ? b : -b;
      return xf;
    default: return xf;
  }
}

inline float unary_grad_one(Unary op, float xf, float yf, float g, float a, float b) {
  const double x = xf;
  switch (op) {
    case Unary::Neg: return -g;
    case Unary::Exp: return g * yf;
    case Unary::Log: return g / xf;
    case Unary::Sqrt: return g / (yf + yf);
    case Unary::Rsqrt: return -0.5f * g * yf * yf * yf;
    case Unary::Abs: return g * (xf > 0.f ? 1.f : (xf < 0.f ? -1.f : (xf == 0.f ? 0.f : xf)));
    case Unary::Square: return g * (xf + xf);
    case Unary::Sign: return 0.f;
    case Unary::Sigmoid: return g * yf * (1.f - yf);
    case Unary::Softplus: return xf > 20.f ? g : static_cast<float>(g * sigmoid_d(x));
    case Unary::Tanh: return g * (1.f - yf * yf);
    case Unary::Silu: {
      const double s = sigmoid_d(x);
      return static_cast<float>(g * (s * (1.0 + x * (1.0 - s))));
    }
    case Unary::GeluTanh: {
      // 0.5(1 + t) + 0.5x(1 - t²)u' with t = tanh(u) = 2s - 1, s = sigmoid(2u)
      const double u = kSqrt2OverPi * (x + kGeluC * x * x * x);
      const double s = sigmoid_d(2.0 * u), oms = sigmoid_d(-2.0 * u);
      const double du = kSqrt2OverPi * (1.0 + 3.0 * kGeluC * x * x);
      return static_cast<float>(g * (s + 2.0 * x * s * oms * du));
    }
    case Unary::GeluErf: {
      const double cdf = 0.5 * std::erfc(-x * kInvSqrt2);
      const double pdf = kInvSqrt2Pi * std::exp(-0.5 * x * x);
      return static_cast<float>(g * (cdf + x * pdf));
    }
    case Unary::Relu: return xf <= 0.f ? 0.f : g;
    case Unary::Affine: return a * g;
    case Unary::PowScalar: return a == 0.f ? 0.f : g * a * std::pow(xf, a - 1.f);
    case Unary::Clamp: return (xf >= a && xf <= b) ? g : 0.f;
    case Unary::IsNan: return 0.f;
    case Unary::NanToNum: return std::isfinite(xf) ? g : 0.f;
    default: return 0.f;
  }
}

inline float binary_one(Binary op, float x, float y) {
  switch (op) {
    case Binary::Add: return x + y;
    case Binary::Sub: return x - y;
    case Binary::Mul: return x * y;
    case Binary::Div: return x / y;
    case Binary::Pow: return std::pow(x, y);
    case Binary::Maximum:
      if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<float>::quiet_NaN();
      return x > y ? x : y;
    case Binary::Minimum:
      if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<float>::quiet_NaN();
      return x < y ? x : y;
    default: return 0.f;
  }
}

// ---------------------------------------------------------------- norms

void gn_fwd_block(int64_t Cg, int64_t HW, float eps, const float* x, const float* gamma, const float* beta, bool silu,
                  float* y, float* mean_out, float* rstd_out) {
  const int64_t cnt = Cg * HW;
  double s = 0, ss = 0;
  for (int64_t i = 0; i < cnt; ++i) s += x[i];
  const double mean = cnt > 0 ? s / static_cast<double>(cnt) : 0.0;
  for (int64_t i = 0; i < cnt; ++i) {
    const double d = x[i] - mean;
    ss += d * d;
  }
  const double var = cnt > 0 ? ss / static_cast<double>(cnt) : 0.0;
  const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
  *mean_out = static_cast<float>(mean);
  *rstd_out = static_cast<float>(rstd);
  for (int64_t c = 0; c < Cg; ++c) {
    const double gm = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
    for (int64_t i = c * HW; i < (c + 1) * HW; ++i) {
      double v = (x[i] - mean) * rstd * gm + bt;
      if (silu) v = v * sigmoid_d(v);
      y[i] = static_cast<float>(v);
    }
  }
}

void gn_bwd_block(int64_t Cg, int64_t HW, const float* x, const float* gamma, const float* beta, bool silu,
                  float mean_f, float rstd_f, const float* gy, float* gx, double* dgamma, double* dbeta) {
  const double mean = mean_f, rstd = rstd_f;
  const int64_t cnt = Cg * HW;
  // dy (gradient w.r.t. the affine output) for element i.
  auto dy_at = [&](int64_t c, int64_t i) {
    double g = gy[i];
    if (silu) {
      const double gm = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
      const double v = (x[i] - mean) * rstd * gm + bt;
      const double s = sigmoid_d(v);
      g *= s * (1.0 + v * (1.0 - s));
    }
    return g;
  };
  double sum_a = 0, sum_b = 0;  // Σ dxhat, Σ dxhat·x̂
  for (int64_t c = 0; c < Cg; ++c) {
    const double gm = gamma ? gamma[c] : 1.0;
    double ds = 0, db = 0;
    for (int64_t i = c * HW; i < (c + 1) * HW; ++i) {
      const double d = dy_at(c, i);
      const double xh = (x[i] - mean) * rstd;
      db += d;
      ds += d * xh;
    }
    dgamma[c] = ds;
    dbeta[c] = db;
    sum_a += db * gm;
    sum_b += ds * gm;
  }
  const double inv = cnt > 0 ? 1.0 / static_cast<double>(cnt) : 0.0;
  const double ma = sum_a * inv, mb = sum_b * inv;
  for (int64_t c = 0; c < Cg; ++c) {
    const double gm = gamma ? gamma[c] : 1.0;
    for (int64_t i = c * HW; i < (c + 1) * HW; ++i) {
      const double xh = (x[i] - mean) * rstd;
      gx[i] = static_cast<float>(rstd * (dy_at(c, i) * gm - ma - xh * mb));
    }
  }
}

void ln_fwd_rows(int64_t rows, int64_t D, float eps, const float* x, const float* gamma, const float* beta, float* y,
                 float* mean_out, float* rstd_out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    double s = 0, ss = 0;
    for (int64_t i = 0; i < D; ++i) s += xr[i];
    const double mean = D > 0 ? s / static_cast<double>(D) : 0.0;
    for (int64_t i = 0; i < D; ++i) {
      const double d = xr[i] - mean;
      ss += d * d;
    }
    const double var = D > 0 ? ss / static_cast<double>(D) : 0.0;
    const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    if (mean_out) mean_out[r] = static_cast<float>(mean);
    if (rstd_out) rstd_out[r] = static_cast<float>(rstd);
    for (int64_t i = 0; i < D; ++i) {
      const double v = (xr[i] - mean) * rstd * (gamma ? gamma[i] : 1.0) + (beta ? beta[i] : 0.0);
      yr[i] = static_cast<float>(v);
    }
  }
}

void ln_bwd_rows(int64_t rows, int64_t D, const float* x, const float* gamma, const float* mean, const float* rstd,
                 const float* gy, float* gx) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    const float* gr = gy + r * D;
    float* o = gx + r * D;
    const double mu = mean[r], rs = rstd[r];
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double d = gr[i] * (gamma ? gamma[i] : 1.0);
      sa += d;
      sb += d * (xr[i] - mu) * rs;
    }
    const double ma = D > 0 ? sa / static_cast<double>(D) : 0.0, mb = D > 0 ? sb / static_cast<double>(D) : 0.0;
    for (int64_t i = 0; i < D; ++i) {
      const double d = gr[i] * (gamma ? gamma[i] : 1.0);
      o[i] = static_cast<float>(rs * (d - ma - (xr[i] - mu) * rs * mb));
    }
  }
}

void ln_param_grad(int64_t M, int64_t D, int64_t d0, int64_t d1, const float* x, const float* mean, const float* rstd,
                   const float* gy, float* ggamma, float* gbeta) {
  for (int64_t d = d0; d < d1; ++d) {
    double sg = 0, sb = 0;
    for (int64_t r = 0; r < M; ++r) {
      const double g = gy[r * D + d];
      sb += g;
      sg += g * (x[r * D + d] - static_cast<double>(mean[r])) * rstd[r];
    }
    if (ggamma) ggamma[d] = static_cast<float>(sg);
    if (gbeta) gbeta[d] = static_cast<float>(sb);
  }
}

void softmax_fwd_rows(int64_t rows, int64_t D, const float* x, float* y, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    double mx = -std::numeric_limits<double>::infinity();
    bool nan = false;
    for (int64_t i = 0; i < D; ++i) {
      if (std::isnan(xr[i])) nan = true;
      if (xr[i] > mx) mx = xr[i];
    }
    if (nan) mx = std::numeric_limits<double>::quiet_NaN();
    double s = 0;
    for (int64_t i = 0; i < D; ++i) s += std::exp(xr[i] - mx);
    if (log) {
      const double ls = std::log(s);
      for (int64_t i = 0; i < D; ++i) yr[i] = static_cast<float>(xr[i] - mx - ls);
    } else {
      for (int64_t i = 0; i < D; ++i) yr[i] = static_cast<float>(std::exp(xr[i] - mx) / s);
    }
  }
}

void softmax_bwd_rows(int64_t rows, int64_t D, const float* y, const float* gy, float* gx, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * D;
    const float* gr = gy + r * D;
    float* o = gx + r * D;
    double s = 0;
    if (log) {
      for (int64_t i = 0; i < D; ++i) s += gr[i];
      for (int64_t i = 0; i < D; ++i) o[i] = static_cast<float>(gr[i] - std::exp(static_cast<double>(yr[i])) * s);
    } else {
      for (int64_t i = 0; i < D; ++i) s += static_cast<double>(gr[i]) * yr[i];
      for (int64_t i = 0; i < D; ++i) o[i] = static_cast<float>(yr[i] * (gr[i] - s));
    }
  }
}

// ---------------------------------------------------------------- optimizers

void adam(int64_t n, float* param, const float* grad, float* m, float* v, const AdamParams& p) {
  const float step = p.lr / p.bias_c1;
  const float inv_c2 = 1.f / p.bias_c2;
  const float decay = 1.f - p.lr * p.weight_decay;
  for (int64_t i = 0; i < n; ++i) {
    float w = param[i];
    float g = grad[i] * p.grad_scale;
    if (p.decoupled) {
      w *= decay;
    } else {
      g += p.weight_decay * w;
    }
    const float mi = (m && p.beta1 != 0.f) ? p.beta1 * m[i] + (1.f - p.beta1) * g : g;
    const float vi = p.beta2 * v[i] + (1.f - p.beta2) * g * g;
    if (m) m[i] = mi;
    v[i] = vi;
    param[i] = w - step * mi / (std::sqrt(vi * inv_c2) + p.eps);
  }
}

void sgd(int64_t n, float* param, const float* grad, float* buf, float lr, float momentum, float weight_decay,
         bool nesterov, float grad_scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float w = param[i];
    const float g = grad[i] * grad_scale + weight_decay * w;
    float upd = g;
    if (momentum != 0.f && buf) {
      const float bv = momentum * buf[i] + g;
      buf[i] = bv;
      upd = nesterov ? g + momentum * bv : bv;
    }
    param[i] = w - lr * upd;
  }
}

void ema(int64_t n, float* e, const float* param, float decay) {
  const float c = 1.f - decay;
  for (int64_t i = 0; i < n; ++i) e[i] = decay * e[i] + c * param[i];
}

double sum_squares(int64_t n, const float* x) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

int64_t sanitize(int64_t n, float* x) {
  int64_t cnt = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      x[i] = 0.f;
      ++cnt;
    }
  }
  return cnt;
}

}  // namespace

void unary(Unary op, int64_t n, const float* x, float* y, float a, float b) {
  for (int64_t i = 0; i < n; ++i) y[i] = unary_one(op, x[i], a, b);
}

void unary_backward(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a, float b) {
  for (int64_t i = 0; i < n; ++i) gx[i] = unary_grad_one(op, x ? x[i] : 0.f, y ? y[i] : 0.f, gy[i], a, b);
}

void binary(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = binary_one(op, a[i * sa], b[i * sb]);
}

void mul_add(int64_t n, const float* x, int64_t sx, const float* y, int64_t sy, const float* z, int64_t sz, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::fma(x[i * sx], y[i * sy], z[i * sz]);
}

namespace {
void unary_rows(Unary op, int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy) {
  for (int64_t i = 0; i < rows; ++i) ref::unary(op, n, x + i * ldx, y + i * ldy, 0.f, 0.f);
}
void gated_add_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, const float* gate, const float* r, int64_t ldr,
                    float* y, int64_t ldy) {
  for (int64_t i = 0; i < rows; ++i) {
    if (gate)
      ref::mul_add(n, x + i * ldx, 1, gate, 1, r + i * ldr, 1, y + i * ldy);
    else
      ref::binary(Binary::Add, n, x + i * ldx, 1, r + i * ldr, 1, y + i * ldy);
  }
}
}  // namespace

const VectorKernels* vector_table() {
  static const VectorKernels t = {
      &ref::unary,     &ref::unary_backward, &ref::binary,           &gn_fwd_block,    &gn_bwd_block,
      &ln_fwd_rows,    &ln_bwd_rows,         &ln_param_grad,         &softmax_fwd_rows, &softmax_bwd_rows,
      &adam,           &sgd,                 &ema,                   &sum_squares,     &sanitize,
      &mul_add,        &unary_rows,     &gated_add_rows,
  };
  return &t;
}

}  // namespace fd::kernels::ref
