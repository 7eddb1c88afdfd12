// Public vector kernels: ISA dispatch (fd::active_isa() at every call) and
// threading on the process-wide pool. The per-ISA code (kernels/vector_impl.h)
// is serial; every reduction that spans threads is done here in a fixed order
// over fixed-size pieces, so results do not depend on the thread count.
#include <algorithm>
#include <cstring>
#include <cstdint>
#include <vector>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "kernels/vector.h"
#include "kernels/vector_impl.h"

namespace fd::kernels {
namespace {

// Work below this many elements runs on the calling thread.
constexpr int64_t kParallelMin = 32768;
// Elementwise chunks are multiples of this many elements (cache lines / vector widths).
constexpr int64_t kBlock = 64;
// Fixed chunk size of sum_squares / sanitize partial results.
constexpr int64_t kReduceChunk = 8192;

const VectorKernels* table() {
  switch (active_isa()) {
    case Isa::Avx512: return avx512::vector_table();
    case Isa::Avx2: return avx2::vector_table();
    default: return ref::vector_table();
  }
}

bool serial() { return ThreadPool::in_parallel() || ThreadPool::global().num_threads() <= 1; }

// Runs f(begin, end) over [0, n) in pieces that start on multiples of kBlock.
template <class F>
void for_elements(int64_t n, int64_t min_parallel, const F& f) {
  if (n <= 0) return;
  if (n < min_parallel || serial()) {
    f(0, n);
    return;
  }
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, (min_parallel / 2) / kBlock);
  ThreadPool::global().parallel_for_balanced(blocks, grain, [&](int64_t b0, int64_t b1) {
    const int64_t e0 = b0 * kBlock, e1 = std::min(n, b1 * kBlock);
    if (e0 < e1) f(e0, e1);
  });
}

// Runs f(i0, i1) over [0, items) where one item costs `item_cost` elements of work.
template <class F>
void for_items(int64_t items, int64_t item_cost, const F& f) {
  if (items <= 0) return;
  const int64_t total = items * std::max<int64_t>(1, item_cost);
  if (items == 1 || total < kParallelMin || serial()) {
    f(0, items);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, (kParallelMin / 2) / std::max<int64_t>(1, item_cost));
  ThreadPool::global().parallel_for_balanced(items, grain, f);
}

// Exp/log-heavy unary ops are worth threading at smaller sizes than memory-bound ones.
bool heavy_unary(Unary op) {
  switch (op) {
    case Unary::Exp: case Unary::Log: case Unary::Sigmoid: case Unary::Softplus: case Unary::Tanh:
    case Unary::Silu: case Unary::GeluTanh: case Unary::GeluErf: case Unary::PowScalar:
      return true;
    default: return false;
  }
}

}  // namespace

void unary(Unary op, int64_t n, const float* x, float* y, float a, float b) {
  const VectorKernels* k = table();
  for_elements(n, heavy_unary(op) ? kParallelMin / 2 : kParallelMin,
               [&](int64_t i0, int64_t i1) { k->unary(op, i1 - i0, x + i0, y + i0, a, b); });
}

void unary_rows(Unary op, int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy) {
  table()->unary_rows(op, rows, n, x, ldx, y, ldy);
}
void gated_add_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, const float* gate, const float* r, int64_t ldr,
                    float* y, int64_t ldy) {
  table()->gated_add_rows(rows, n, x, ldx, gate, r, ldr, y, ldy);
}

void unary_backward(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a,
                    float b) {
  const VectorKernels* k = table();
  for_elements(n, heavy_unary(op) ? kParallelMin / 2 : kParallelMin, [&](int64_t i0, int64_t i1) {
    k->unary_backward(op, i1 - i0, x ? x + i0 : nullptr, y ? y + i0 : nullptr, gy + i0, gx + i0, a, b);
  });
}

void binary(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out) {
  const VectorKernels* k = table();
  sa = sa ? 1 : 0;
  sb = sb ? 1 : 0;
  for_elements(n, op == Binary::Pow ? kParallelMin / 2 : kParallelMin, [&](int64_t i0, int64_t i1) {
    k->binary(op, i1 - i0, a + i0 * sa, sa, b + i0 * sb, sb, out + i0);
  });
}

void mul_add(int64_t n, const float* x, int64_t sx, const float* y, int64_t sy, const float* z, int64_t sz, float* out) {
  const VectorKernels* k = table();
  sx = sx ? 1 : 0, sy = sy ? 1 : 0, sz = sz ? 1 : 0;
  for_elements(n, kParallelMin, [&](int64_t i0, int64_t i1) {
    k->mul_add(i1 - i0, x + i0 * sx, sx, y + i0 * sy, sy, z + i0 * sz, sz, out + i0);
  });
}

void group_norm_forward(int64_t N, int64_t C, int64_t HW, int64_t G, float eps, const float* x, const float* gamma,
                        const float* beta, bool silu, float* y, float* mean, float* rstd) {
  if (N <= 0 || C <= 0 || G <= 0) return;
  const VectorKernels* k = table();
  const int64_t Cg = C / G, blk = Cg * HW;
  for_items(N * G, blk * (silu ? 3 : 1), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i % G;
      k->group_norm_fwd_block(Cg, HW, eps, x + i * blk, gamma ? gamma + g * Cg : nullptr,
                              beta ? beta + g * Cg : nullptr, silu, y + i * blk, mean + i, rstd + i);
    }
  });
}

void group_norm_backward(int64_t N, int64_t C, int64_t HW, int64_t G, const float* x, const float* gamma,
                         const float* beta, bool silu, const float* mean, const float* rstd, const float* gy, float* gx,
                         float* ggamma, float* gbeta) {
  if (N <= 0 || C <= 0 || G <= 0) return;
  const VectorKernels* k = table();
  const int64_t Cg = C / G, blk = Cg * HW;
  std::vector<double> dg(static_cast<size_t>(N * C)), db(static_cast<size_t>(N * C));
  for_items(N * G, blk * (silu ? 4 : 2), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i % G;
      k->group_norm_bwd_block(Cg, HW, x + i * blk, gamma ? gamma + g * Cg : nullptr, beta ? beta + g * Cg : nullptr,
                              silu, mean[i], rstd[i], gy + i * blk, gx + i * blk, dg.data() + i * Cg,
                              db.data() + i * Cg);
    }
  });
  // Reduce over N in a fixed order.
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0, sb = 0;
    for (int64_t n = 0; n < N; ++n) {
      sg += dg[n * C + c];
      sb += db[n * C + c];
    }
    if (ggamma) ggamma[c] = static_cast<float>(sg);
    if (gbeta) gbeta[c] = static_cast<float>(sb);
  }
}

// Calls f(a, b, g) for the runs [a, b) of [r0, r1) that share affine row g (runs of R rows).
template <class F>
void affine_runs(int64_t r0, int64_t r1, int64_t R, const F& f) {
  for (int64_t a = r0; a < r1;) {
    const int64_t g = a / R, b = std::min(r1, (g + 1) * R);
    f(a, b, g);
    a = b;
  }
}

void layer_norm_forward(int64_t M, int64_t D, float eps, const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd, int64_t affine_rows) {
  if (M <= 0 || D <= 0) return;
  const VectorKernels* k = table();
  const int64_t R = affine_rows > 0 && affine_rows < M ? affine_rows : M;
  for_items(M, D, [&](int64_t r0, int64_t r1) {
    affine_runs(r0, r1, R, [&](int64_t a, int64_t b, int64_t g) {
      k->layer_norm_fwd_rows(b - a, D, eps, x + a * D, gamma ? gamma + g * D : nullptr, beta ? beta + g * D : nullptr,
                             y + a * D, mean ? mean + a : nullptr, rstd ? rstd + a : nullptr);
    });
  });
}

void layer_norm_backward(int64_t M, int64_t D, const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* ggamma, float* gbeta, int64_t affine_rows) {
  if (M <= 0 || D <= 0) return;
  const VectorKernels* k = table();
  const int64_t R = affine_rows > 0 && affine_rows < M ? affine_rows : M, G = M / R;
  // Parameter gradients first: gx may alias gy.
  if (ggamma || gbeta) {
    // Column blocks of each affine row: each column is reduced over its R rows, in row order, by one thread.
    constexpr int64_t kCols = 64;
    const int64_t nb = (D + kCols - 1) / kCols;
    for_items(G * nb, R * kCols, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t g = i / nb, c0 = (i % nb) * kCols, r = g * R;
        k->layer_norm_param_grad(R, D, c0, std::min(D, c0 + kCols), x + r * D, mean + r, rstd + r, gy + r * D,
                                 ggamma ? ggamma + g * D : nullptr, gbeta ? gbeta + g * D : nullptr);
      }
    });
  }
  if (gx) {
    for_items(M, 2 * D, [&](int64_t r0, int64_t r1) {
      affine_runs(r0, r1, R, [&](int64_t a, int64_t b, int64_t g) {
        k->layer_norm_bwd_rows(b - a, D, x + a * D, gamma ? gamma + g * D : nullptr, mean + a, rstd + a, gy + a * D,
                               gx + a * D);
      });
    });
  }
}

void softmax_forward(int64_t M, int64_t D, const float* x, float* y, bool log) {
  if (M <= 0 || D <= 0) return;
  const VectorKernels* k = table();
  for_items(M, 4 * D, [&](int64_t r0, int64_t r1) { k->softmax_fwd_rows(r1 - r0, D, x + r0 * D, y + r0 * D, log); });
}

void softmax_backward(int64_t M, int64_t D, const float* y, const float* gy, float* gx, bool log) {
  if (M <= 0 || D <= 0) return;
  const VectorKernels* k = table();
  for_items(M, 2 * D, [&](int64_t r0, int64_t r1) {
    k->softmax_bwd_rows(r1 - r0, D, y + r0 * D, gy + r0 * D, gx + r0 * D, log);
  });
}

void adam_step(int64_t n, float* param, const float* grad, float* m, float* v, const AdamParams& p) {
  const VectorKernels* k = table();
  for_elements(n, kParallelMin, [&](int64_t i0, int64_t i1) {
    k->adam(i1 - i0, param + i0, grad + i0, m ? m + i0 : nullptr, v + i0, p);
  });
}

void sgd_step(int64_t n, float* param, const float* grad, float* buf, float lr, float momentum, float weight_decay,
              bool nesterov, float grad_scale) {
  const VectorKernels* k = table();
  for_elements(n, kParallelMin, [&](int64_t i0, int64_t i1) {
    k->sgd(i1 - i0, param + i0, grad + i0, buf ? buf + i0 : nullptr, lr, momentum, weight_decay, nesterov,
           grad_scale);
  });
}

void ema_update(int64_t n, float* ema, const float* param, float decay) {
  const VectorKernels* k = table();
  for_elements(n, kParallelMin, [&](int64_t i0, int64_t i1) { k->ema(i1 - i0, ema + i0, param + i0, decay); });
}

double sum_squares(int64_t n, const float* x) {
  if (n <= 0) return 0.0;
  const VectorKernels* k = table();
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  if (chunks == 1) return k->sum_squares(n, x);
  std::vector<double> part(static_cast<size_t>(chunks));
  for_items(chunks, kReduceChunk, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t e0 = c * kReduceChunk, e1 = std::min(n, e0 + kReduceChunk);
      part[c] = k->sum_squares(e1 - e0, x + e0);
    }
  });
  double s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += part[c];
  return s;
}

int64_t sanitize_nonfinite(int64_t n, float* x) {
  if (n <= 0) return 0;
  const VectorKernels* k = table();
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  std::vector<int64_t> part(static_cast<size_t>(chunks));
  for_items(chunks, kReduceChunk, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t e0 = c * kReduceChunk, e1 = std::min(n, e0 + kReduceChunk);
      part[c] = k->sanitize(e1 - e0, x + e0);
    }
  });
  int64_t s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += part[c];
  return s;
}

// ---- op names ----
namespace {
const char* const kUnaryNames[] = {"neg",  "exp",     "log",      "sqrt", "rsqrt", "abs",       "square",
                                   "sign", "sigmoid", "softplus", "tanh", "silu",  "gelu_tanh", "gelu_erf",
                                   "relu", "affine",  "pow",      "clamp", "isnan", "nan_to_num"};
const char* const kBinaryNames[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
static_assert(sizeof(kUnaryNames) / sizeof(kUnaryNames[0]) == static_cast<size_t>(Unary::Count), "a unary op has no name");
static_assert(sizeof(kBinaryNames) / sizeof(kBinaryNames[0]) == static_cast<size_t>(Binary::Count), "a binary op has no name");
}  // namespace

const char* unary_name(Unary op) { return kUnaryNames[static_cast<int>(op)]; }
const char* binary_name(Binary op) { return kBinaryNames[static_cast<int>(op)]; }

bool parse_unary(const char* name, Unary* out) {
  for (int i = 0; i < static_cast<int>(Unary::Count); ++i)
    if (std::strcmp(name, kUnaryNames[i]) == 0) return *out = static_cast<Unary>(i), true;
  return false;
}

bool parse_binary(const char* name, Binary* out) {
  for (int i = 0; i < static_cast<int>(Binary::Count); ++i)
    if (std::strcmp(name, kBinaryNames[i]) == 0) return *out = static_cast<Binary>(i), true;
  return false;
}

}  // namespace fd::kernels
