// matmul (batched, broadcasting batch dims) and linear, on sgemm: kernels::sgemm on
// the CPU, cuda::sgemm for CUDA tensors (FD_DISPATCH on the output's device).
// Transposed operands in the backward pass are strided views, never copies.
#include <algorithm>

#include "core/dispatch.h"
#include "core/profile.h"
#include "core/stream.h"
#include "core/threadpool.h"
#include "kernels/gemm.h"
#include "ops.h"
#include "packed_weight.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/gemm.h"
#endif

namespace fd::ops {
namespace {

using kernels::MatView;

// C[b] = op(A[b]) · op(B[b]) for matrices stored row-major; `ta`/`tb` read the
// stored matrix transposed. Batch offsets come from per-batch index tables so
// broadcast batch dims need no copies.
struct BatchedGemm {
  int64_t M, N, K;
  bool ta, tb;
  int64_t a_rows, a_cols, b_rows, b_cols;  // stored (untransposed) matrix sizes
  std::vector<int64_t> a_off, b_off;       // per output batch: element offsets
};

void run_gemm(const BatchedGemm& g, Device dev, const float* A, const float* B, float* C) {
  const int64_t batch = int64_t(g.a_off.size());
  const MatView av{nullptr, g.ta ? 1 : g.a_cols, g.ta ? g.a_cols : 1};
  const MatView bv{nullptr, g.tb ? 1 : g.b_cols, g.tb ? g.b_cols : 1};
  // Uniform strides → one batched call; otherwise loop (each sgemm is threaded).
  bool uniform = batch > 1;
  const int64_t sa = batch > 1 ? g.a_off[1] - g.a_off[0] : 0, sb = batch > 1 ? g.b_off[1] - g.b_off[0] : 0;
  for (int64_t b = 1; uniform && b < batch; ++b)
    uniform = g.a_off[b] - g.a_off[b - 1] == sa && g.b_off[b] - g.b_off[b - 1] == sb;
  if (uniform || batch == 1) {
    FD_DISPATCH(dev, sgemm_batched, batch, g.M, g.N, g.K, 1.f, {A + g.a_off[0], av.rs, av.cs}, sa,
                {B + g.b_off[0], bv.rs, bv.cs}, sb, 0.f, C, g.N, g.M * g.N);
    return;
  }
  if (dev.type == DeviceType::CUDA) {
    // One launch per run of evenly spaced offsets (e.g. the inner broadcast dim)
    // rather than one per matrix.
    for (int64_t b = 0; b < batch;) {
      int64_t e = b + 1;
      const int64_t ra = e < batch ? g.a_off[e] - g.a_off[b] : 0, rb = e < batch ? g.b_off[e] - g.b_off[b] : 0;
      while (e < batch && g.a_off[e] - g.a_off[e - 1] == ra && g.b_off[e] - g.b_off[e - 1] == rb) ++e;
      FD_DISPATCH(dev, sgemm_batched, e - b, g.M, g.N, g.K, 1.f, {A + g.a_off[b], av.rs, av.cs}, ra,
                  {B + g.b_off[b], bv.rs, bv.cs}, rb, 0.f, C + b * g.M * g.N, g.N, g.M * g.N);
      b = e;
    }
    return;
  }
  for (int64_t b = 0; b < batch; ++b)
    kernels::sgemm(g.M, g.N, g.K, 1.f, {A + g.a_off[b], av.rs, av.cs}, {B + g.b_off[b], bv.rs, bv.cs}, 0.f,
                   C + b * g.M * g.N, g.N);
}

// Batch offsets of an operand with batch shape `own` broadcast into `out`.
std::vector<int64_t> batch_offsets(const Shape& own, const Shape& out, int64_t matrix_size) {
  std::vector<int64_t> offs;
  const int64_t total = shape_numel(out);
  const auto st = contiguous_strides(own);
  const size_t lead = out.size() - own.size();
  for (int64_t b = 0; b < total; ++b) {
    int64_t rem = b, off = 0;
    for (int64_t d = int64_t(out.size()) - 1; d >= 0; --d) {
      const int64_t i = rem % out[d];
      rem /= out[d];
      if (d >= int64_t(lead) && own[d - lead] != 1) off += i * st[d - lead];
    }
    offs.push_back(off * matrix_size);
  }
  return offs;
}

struct MatmulBackward : Node {
  TensorPtr a, b;
  const char* name() const override { return "matmul"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr};
    TensorPtr ga, gb;
    if (next[0].fn) ga = sum_to(matmul(g[0], transpose(b, -1, -2)), a->shape);
    if (next[1].fn) gb = sum_to(matmul(transpose(a, -1, -2), g[0]), b->shape);
    return {ga, gb};
  }
  void release() override { a = b = nullptr; }
};

struct LinearBackward : Node {
  TensorPtr x, w;
  bool has_bias;
  const char* name() const override { return "linear"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override;
  void release() override { x = w = nullptr; }
};

std::vector<TensorPtr> LinearBackward::apply(const std::vector<TensorPtr>& g) {
  if (!g[0]) return {nullptr, nullptr, nullptr};
  const int64_t K = w->shape[1], N = w->shape[0], M = x->numel() / std::max<int64_t>(K, 1);
  TensorPtr gy = g[0], xs = x, ws = w;
  TensorPtr gx, gw, gb;
  check_same_device("linear", gy, xs);
  const Device dev = x->device();
  if (next[0].fn) {
    gx = empty(x->shape, dev);
    launch("linear_backward_input", [=] {
      FD_DISPATCH(dev, sgemm, M, K, N, 1.f, {gy->data(), N, 1}, {ws->data(), K, 1}, 0.f, gx->data(), K);
    });
  }
  if (next[1].fn) {
    gw = empty(w->shape, dev);
    launch("linear_backward_weight", [=] {
      FD_DISPATCH(dev, sgemm, N, K, M, 1.f, {gy->data(), 1, N}, {xs->data(), K, 1}, 0.f, gw->data(), K);
    });
  }
  if (has_bias && next[2].fn) gb = reduce(Reduce::Sum, reshape(gy, {M, N}), {0}, false);
  return {gx, gw, gb};
}

}  // namespace

TensorPtr matmul(const TensorPtr& a, const TensorPtr& b) {
  check_same_device("matmul", a, b);
  FD_CHECK(a->dim() >= 2 && b->dim() >= 2, ErrorCode::Shape, "matmul: both operands need at least 2 dims, got ",
           shape_str(a->shape), " and ", shape_str(b->shape));
  const int64_t M = a->shape[a->dim() - 2], K = a->shape[a->dim() - 1];
  const int64_t K2 = b->shape[b->dim() - 2], N = b->shape[b->dim() - 1];
  FD_CHECK(K == K2, ErrorCode::Shape, "matmul: inner dimensions differ: ", shape_str(a->shape), " @ ",
           shape_str(b->shape));
  const Shape ab(a->shape.begin(), a->shape.end() - 2), bb(b->shape.begin(), b->shape.end() - 2);
  Shape batch = broadcast_shapes("matmul", ab, bb);
  Shape shape = batch;
  shape.push_back(M);
  shape.push_back(N);
  TensorPtr y = empty(shape, a->device());
  auto plan = std::make_shared<BatchedGemm>(BatchedGemm{M, N, K, false, false, M, K, K, N,
                                                         batch_offsets(ab, batch, M * K), batch_offsets(bb, batch, K * N)});
  if (plan->a_off.empty()) plan->a_off = {0}, plan->b_off = {0};
  count_flops(2.0 * double(y->numel()) * double(K));
  const Device dev = y->device();
  launch("matmul", [=] {
    if (y->numel() == 0) return;
    run_gemm(*plan, dev, a->data(), b->data(), y->data());
  });
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<MatmulBackward>();
    node->a = save(a), node->b = save(b);
    record(node, {a, b}, {y});
  }
  return y;
}

namespace {
// The output shape of linear(x, w): x [..., in], w [out, in] → [..., out].
Shape linear_shape(const TensorPtr& x, const TensorPtr& w) {
  check_same_device("linear", x, w);
  FD_CHECK(w->dim() == 2 && x->dim() >= 1 && x->shape.back() == w->shape[1], ErrorCode::Shape,
           "linear: input ", shape_str(x->shape), " does not match weight ", shape_str(w->shape),
           " (expected [..., in] and [out, in])");
  Shape shape = x->shape;
  shape.back() = w->shape[0];
  return shape;
}

// x·wᵀ + b, then `finish` in the GEMM's epilogue; records the linear when gradients are needed (callers with
// something to finish come here only when none are).
TensorPtr linear_forward(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias, const LinearFinish& finish) {
  const Shape shape = linear_shape(x, w);
  const int64_t K = w->shape[1], N = w->shape[0], M = x->numel() / std::max<int64_t>(K, 1);
  if (bias) {
    check_same_device("linear", x, bias);
    FD_CHECK(bias->dim() == 1 && bias->shape[0] == N, ErrorCode::Shape, "linear: bias ", shape_str(bias->shape),
             " does not match weight ", shape_str(w->shape));
  }
  TensorPtr y = empty(shape, x->device());
  count_flops(2.0 * double(M) * double(N) * double(K));
  const Device dev = y->device();
  const bool keep_pack = keeps_packed(w);  // ops/packed_weight.h
  const std::optional<Unary> act = finish.activation;
  const TensorPtr gate = finish.gate, residual = finish.residual;
  const std::string shape_note =
      profiling_enabled() ? std::to_string(M) + "×" + std::to_string(K) + " → " + std::to_string(N) +
                                (act ? std::string(" + ") + kernels::unary_name(*act) : "") +
                                (residual ? gate ? " + gated residual" : " + residual" : "")
                          : "";
  launch(profile_name("linear", shape_note), [=] {
    kernels::GemmEpilogue ep;
    ep.bias_col = bias ? bias->data() : nullptr;
    ep.activation = act;
    if (residual) ep.residual = residual->data();
    if (gate) {
      ep.gate = gate->data();
      ep.gate_period = M / gate->shape[0];
      ep.gate_ld = N;
    }
    const MatView a{x->data(), K, 1}, wt{w->data(), 1, K};
    if (keep_pack && M > 0 && K > 0) {
      const auto packed = packed_weight(
          w, [&](const kernels::PackedMatrix& p) { return kernels::packed_b_fits(p, K, N); },
          [&] { return kernels::pack_b_once(K, N, wt); });
      if (packed) {
        kernels::sgemm_packed(M, N, K, 1.f, a, wt, *packed, 0.f, y->data(), N, ep);
        return;
      }
    }
    FD_DISPATCH(dev, sgemm, M, N, K, 1.f, a, wt, 0.f, y->data(), N, ep);
  });
  if (any_requires_grad({&x, &w, &bias})) {
    auto node = std::make_shared<LinearBackward>();
    node->x = save(x), node->w = save(w), node->has_bias = bias != nullptr;
    record(node, {x, w, bias}, {y});
  }
  return y;
}
}  // namespace

TensorPtr linear(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias) { return linear_forward(x, w, bias, {}); }

TensorPtr linear(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias, const LinearFinish& finish) {
  const char* op = "linear";
  if (const auto act = finish.activation) {
    using U = Unary;
    FD_CHECK(*act == U::Relu || *act == U::Silu || *act == U::Sigmoid || *act == U::Tanh || *act == U::GeluTanh ||
                 *act == U::GeluErf,
             ErrorCode::Argument, op, ": activation must be relu, silu, sigmoid, tanh, gelu_tanh or gelu_erf, got ",
             kernels::unary_name(*act));
  }
  const TensorPtr &gate = finish.gate, &residual = finish.residual;
  FD_CHECK(!gate || residual, ErrorCode::Argument, op, ": a gate scales the output before a residual is added: pass one");
  int64_t G = 1, M = 0, N = 0;
  if (residual) {
    check_same_device(op, x, residual);
    const Shape out_shape = linear_shape(x, w);
    N = w->shape[0];
    M = shape_numel(out_shape) / std::max<int64_t>(N, 1);
    FD_CHECK(residual->shape == out_shape, ErrorCode::Shape, op, ": residual ", shape_str(residual->shape),
             " does not match the output ", shape_str(out_shape));
    if (gate) {
      check_same_device(op, x, gate);
      FD_CHECK(gate->dim() == 2 && gate->shape[1] == N && gate->shape[0] > 0 && M % gate->shape[0] == 0,
               ErrorCode::Shape, op, ": gate ", shape_str(gate->shape), " must be [G, ", N,
               "] with G dividing the output's ", M, " rows");
      G = gate->shape[0];
    }
  }
  // The activation's gradient needs its input: with gradients to record, the linear and then the separate ops.
  if (any_requires_grad({&x, &w, &bias, &gate, &residual})) {
    TensorPtr y = linear_forward(x, w, bias, {});
    if (finish.activation) y = unary(*finish.activation, y);
    if (!residual) return y;
    if (!gate) return add(y, residual);
    const Shape grouped{G, M / G, N};
    return reshape(mul_add(reshape(y, grouped), reshape(gate, {G, 1, N}), reshape(residual, grouped)), residual->shape);
  }
  return linear_forward(x, w, bias, finish);
}

}  // namespace fd::ops
