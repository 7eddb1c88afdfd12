// Fused optimizer steps and EMA: one queued kernel per step updates every
// parameter in place, with optional NaN/Inf sanitizing and global-norm clipping
// computed on the stream (no synchronization with JS).
#include <cmath>

#include "core/stream.h"
#include "ops.h"

namespace fd::ops {
namespace {

struct GradList {
  std::vector<TensorPtr> params, grads, s1, s2;
};

GradList collect(const OptimGroup& group, const char* op, int states) {
  GradList l;
  for (size_t i = 0; i < group.params.size(); ++i) {
    const TensorPtr& p = group.params[i];
    if (!p->grad) continue;  // no gradient this step: leave the parameter and its state alone
    FD_CHECK(p->grad->shape == p->shape, ErrorCode::Shape, op, ": gradient ", shape_str(p->grad->shape),
             " does not match parameter ", shape_str(p->shape));
    FD_CHECK((states < 1 || (i < group.state1.size() && group.state1[i]->shape == p->shape)) &&
                 (states < 2 || (i < group.state2.size() && group.state2[i]->shape == p->shape)),
             ErrorCode::Shape, op, ": optimizer state does not match parameter ", shape_str(p->shape));
    l.params.push_back(p), l.grads.push_back(p->grad);
    if (states >= 1) l.s1.push_back(group.state1[i]);
    if (states >= 2) l.s2.push_back(group.state2[i]);
  }
  return l;
}

// Sanitizes and measures the gradients; returns the factor to scale them by.
float prepare_grads(const std::vector<TensorPtr>& grads, const StepOptions& o) {
  int64_t nonfinite = 0;
  if (o.sanitize)
    for (const auto& g : grads) nonfinite += kernels::sanitize_nonfinite(g->numel(), g->data());
  double ss = 0;
  for (const auto& g : grads) ss += kernels::sum_squares(g->numel(), g->data());
  const double norm = std::sqrt(ss);
  float scale = 1.f;
  if (o.max_grad_norm > 0.f && norm > o.max_grad_norm) scale = float(o.max_grad_norm / (norm + 1e-6));
  if (o.stats) {
    o.stats->data()[0] = float(norm);
    o.stats->data()[1] = scale;
    o.stats->data()[2] = float(nonfinite);
  }
  return scale;
}

void check_stats(const StepOptions& o) {
  FD_CHECK(!o.stats || o.stats->numel() == 3, ErrorCode::Shape, "optimizer: stats tensor must have 3 elements");
}

}  // namespace

void adam_step(OptimGroup& group, const kernels::AdamParams& hyper, const StepOptions& options) {
  check_stats(options);
  GradList l = collect(group, "adam", 2);
  launch("adam", [l, hyper, options] {
    kernels::AdamParams h = hyper;
    h.grad_scale = prepare_grads(l.grads, options);
    for (size_t i = 0; i < l.params.size(); ++i)
      kernels::adam_step(l.params[i]->numel(), l.params[i]->data(), l.grads[i]->data(), l.s1[i]->data(),
                         l.s2[i]->data(), h);
  });
}

void sgd_step(OptimGroup& group, float lr, float momentum, float weight_decay, bool nesterov,
              const StepOptions& options) {
  check_stats(options);
  GradList l = collect(group, "sgd", momentum != 0.f ? 1 : 0);
  launch("sgd", [=] {
    const float scale = prepare_grads(l.grads, options);
    for (size_t i = 0; i < l.params.size(); ++i)
      kernels::sgd_step(l.params[i]->numel(), l.params[i]->data(), l.grads[i]->data(),
                        momentum != 0.f ? l.s1[i]->data() : nullptr, lr, momentum, weight_decay, nesterov, scale);
  });
}

void ema_update(const std::vector<TensorPtr>& ema, const std::vector<TensorPtr>& params, float decay) {
  FD_CHECK(ema.size() == params.size(), ErrorCode::Shape, "ema: ", ema.size(), " averages for ", params.size(),
           " parameters");
  for (size_t i = 0; i < ema.size(); ++i)
    FD_CHECK(ema[i]->shape == params[i]->shape, ErrorCode::Shape, "ema: average ", shape_str(ema[i]->shape),
             " does not match parameter ", shape_str(params[i]->shape));
  launch("ema", [=] {
    for (size_t i = 0; i < ema.size(); ++i) kernels::ema_update(ema[i]->numel(), ema[i]->data(), params[i]->data(), decay);
  });
}

}  // namespace fd::ops
