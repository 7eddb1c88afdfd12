// Group norm (optionally fused with SiLU), layer norm and softmax.
#include "core/dispatch.h"
#include "core/stream.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/norm.h"
#endif

namespace fd::ops {
namespace {

// saved: x, gamma, beta, per-(n, g) mean and rstd
struct GroupNormBackward : Node {
  int64_t N, C, HW, G;
  bool silu;
  TensorPtr x, gamma, beta, mean, rstd;
  const char* name() const override { return silu ? "group_norm_silu" : "group_norm"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr, nullptr};
    TensorPtr gy = g[0], gx = empty(x->shape, x->device());
    TensorPtr gg = gamma && next[1].fn ? empty({C}, x->device()) : nullptr;
    TensorPtr gb = beta && next[2].fn ? empty({C}, x->device()) : nullptr;
    const int64_t n = N, c = C, hw = HW, groups = G;
    const bool fuse = silu;
    TensorPtr xs = x, gm = gamma, bt = beta, mu = mean, rs = rstd;
    const Device dev = x->device();
    launch(name(), [=] {
      FD_DISPATCH(dev, group_norm_backward, n, c, hw, groups, xs->data(), gm ? gm->data() : nullptr,
                  bt ? bt->data() : nullptr, fuse, mu->data(), rs->data(), gy->data(), gx->data(),
                  gg ? gg->data() : nullptr, gb ? gb->data() : nullptr);
    });
    return {gx, gg, gb};
  }
  void release() override { x = gamma = beta = mean = rstd = nullptr; }
};

struct LayerNormBackward : Node {
  int64_t M, D, affine_rows;
  TensorPtr x, gamma, mean, rstd;
  Shape beta_shape;  // empty: no beta
  const char* name() const override { return "layer_norm"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr, nullptr};
    TensorPtr gy = g[0], gx = empty(x->shape, x->device());
    TensorPtr gg = gamma && next[1].fn ? empty(gamma->shape, x->device()) : nullptr;
    TensorPtr gb = !beta_shape.empty() && next[2].fn ? empty(beta_shape, x->device()) : nullptr;
    const int64_t m = M, d = D, r = affine_rows;
    TensorPtr xs = x, gm = gamma, mu = mean, rs = rstd;
    const Device dev = x->device();
    launch("layer_norm_backward", [=] {
      FD_ON_DEVICE(dev,
                   kernels::layer_norm_backward(m, d, xs->data(), gm ? gm->data() : nullptr, mu->data(), rs->data(),
                                                gy->data(), gx->data(), gg ? gg->data() : nullptr,
                                                gb ? gb->data() : nullptr, r),
                   cuda::layer_norm_backward(m, d, xs->data(), gm ? gm->data() : nullptr, mu->data(), rs->data(),
                                             gy->data(), gx->data(), gg ? gg->data() : nullptr,
                                             gb ? gb->data() : nullptr));
    });
    return {gx, gg, gb};
  }
  void release() override { x = gamma = mean = rstd = nullptr; }
};

struct SoftmaxBackward : Node {
  TensorPtr y;
  bool log;
  const char* name() const override { return log ? "log_softmax" : "softmax"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    TensorPtr gy = g[0], ys = y, gx = empty(y->shape, y->device());
    const bool lg = log;
    const int64_t D = y->shape.back(), M = y->numel() / std::max<int64_t>(D, 1);
    const Device dev = y->device();
    launch(name(), [=] { FD_DISPATCH(dev, softmax_backward, M, D, ys->data(), gy->data(), gx->data(), lg); });
    return {gx};
  }
  void release() override { y = nullptr; }
};

void check_affine(const char* op, const TensorPtr& x, const TensorPtr& p, int64_t n, const char* what) {
  if (!p) return;
  check_same_device(op, x, p);
  FD_CHECK(p->dim() == 1 && p->shape[0] == n, ErrorCode::Shape, op, ": ", what, " ", shape_str(p->shape),
           " does not match ", n, " features of input ", shape_str(x->shape));
}

}  // namespace

TensorPtr group_norm(const TensorPtr& x, int64_t groups, const TensorPtr& gamma, const TensorPtr& beta, float eps,
                     bool silu) {
  const char* op = silu ? "group_norm_silu" : "group_norm";
  FD_CHECK(x->dim() >= 2, ErrorCode::Shape, op, ": expected [N, C, ...], got ", shape_str(x->shape));
  const int64_t N = x->shape[0], C = x->shape[1], HW = x->numel() / std::max<int64_t>(N * C, 1);
  FD_CHECK(groups >= 1 && C % groups == 0, ErrorCode::Shape, op, ": ", C, " channels of ", shape_str(x->shape),
           " are not divisible into ", groups, " groups");
  check_affine(op, x, gamma, C, "weight");
  check_affine(op, x, beta, C, "bias");
  TensorPtr y = empty(x->shape, x->device());
  TensorPtr mean = empty({N * groups}, x->device()), rstd = empty({N * groups}, x->device());
  const Device dev = x->device();
  launch(op, [=] {
    FD_DISPATCH(dev, group_norm_forward, N, C, HW, groups, eps, x->data(), gamma ? gamma->data() : nullptr,
                beta ? beta->data() : nullptr, silu, y->data(), mean->data(), rstd->data());
  });
  if (any_requires_grad({&x, &gamma, &beta})) {
    auto node = std::make_shared<GroupNormBackward>();
    node->N = N, node->C = C, node->HW = HW, node->G = groups, node->silu = silu;
    node->x = save(x), node->gamma = save(gamma), node->beta = save(beta), node->mean = mean, node->rstd = rstd;
    record(node, {x, gamma, beta}, {y});
  }
  return y;
}

TensorPtr layer_norm(const TensorPtr& x, const TensorPtr& gamma, const TensorPtr& beta, float eps) {
  const char* op = "layer_norm";
  FD_CHECK(x->dim() >= 1, ErrorCode::Shape, "layer_norm: input must have at least 1 dim");
  const int64_t D = x->shape.back(), M = x->numel() / std::max<int64_t>(D, 1);
  // gamma/beta [D], or [B, D] per sample of x [B, ..., D] (adaptive layer norm: DiT's modulation fused in)
  const TensorPtr& p0 = gamma ? gamma : beta;
  const bool per_sample = p0 && p0->dim() == 2;
  const int64_t B = x->dim() >= 2 ? x->shape[0] : 1;
  for (const auto* p : {&gamma, &beta}) {
    if (!*p) continue;
    const char* what = p == &gamma ? "weight" : "bias";
    check_same_device(op, x, *p);
    FD_CHECK(((*p)->dim() == 1 && (*p)->shape[0] == D) || (x->dim() >= 2 && (*p)->shape == Shape{B, D}), ErrorCode::Shape,
             op, ": ", what, " ", shape_str((*p)->shape), " is neither [", D, "] nor [", B, ", ", D, "] for input ",
             shape_str(x->shape));
    FD_CHECK(((*p)->dim() == 2) == per_sample, ErrorCode::Shape, op, ": weight ", shape_str(gamma->shape), " and bias ",
             shape_str(beta->shape), " must both be shared [D] or both per sample [B, D]");
  }
  if (per_sample && x->device().type == DeviceType::CUDA) {
    // The CUDA kernels take one affine row for all rows: normalize, then scale and shift per sample.
    Shape per_row(x->dim(), 1);
    per_row.front() = B, per_row.back() = D;
    TensorPtr y = layer_norm(x, nullptr, nullptr, eps);
    if (gamma) y = mul(y, reshape(gamma, per_row));
    return beta ? add(y, reshape(beta, per_row)) : y;
  }
  const int64_t affine_rows = per_sample ? M / std::max<int64_t>(B, 1) : M;
  TensorPtr y = empty(x->shape, x->device());
  TensorPtr mean = empty({M}, x->device()), rstd = empty({M}, x->device());
  const Device dev = x->device();
  launch("layer_norm", [=] {
    FD_ON_DEVICE(dev,
                 kernels::layer_norm_forward(M, D, eps, x->data(), gamma ? gamma->data() : nullptr,
                                             beta ? beta->data() : nullptr, y->data(), mean->data(), rstd->data(),
                                             affine_rows),
                 cuda::layer_norm_forward(M, D, eps, x->data(), gamma ? gamma->data() : nullptr,
                                          beta ? beta->data() : nullptr, y->data(), mean->data(), rstd->data()));
  });
  if (any_requires_grad({&x, &gamma, &beta})) {
    auto node = std::make_shared<LayerNormBackward>();
    node->M = M, node->D = D, node->affine_rows = affine_rows;
    node->beta_shape = beta ? beta->shape : Shape{};
    node->x = save(x), node->gamma = save(gamma), node->mean = mean, node->rstd = rstd;
    record(node, {x, gamma, beta}, {y});
  }
  return y;
}

TensorPtr softmax(const TensorPtr& x, int64_t axis_in, bool log) {
  const int64_t axis = normalize_axis(log ? "log_softmax" : "softmax", axis_in, x->dim());
  if (axis != x->dim() - 1) {
    // Move the axis last, normalize, move it back (autograd follows the permutes).
    TensorPtr moved = transpose(x, axis, -1);
    return transpose(softmax(moved, -1, log), axis, -1);
  }
  const int64_t D = x->dim() ? x->shape.back() : 1, M = x->numel() / std::max<int64_t>(D, 1);
  TensorPtr y = empty(x->shape, x->device());
  const Device dev = x->device();
  launch(log ? "log_softmax" : "softmax",
         [=] { FD_DISPATCH(dev, softmax_forward, M, D, x->data(), y->data(), log); });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<SoftmaxBackward>();
    node->y = save(y), node->log = log;
    record(node, {x}, {y});
  }
  return y;
}

}  // namespace fd::ops
