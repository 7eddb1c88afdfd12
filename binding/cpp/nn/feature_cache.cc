// Keyframe plans and score mixing for the feature cache (METHODS.md §6).
#include "nn/feature_cache.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fd::nn {

void check_plan(const ReusePlan& plan) {
  const size_t n = plan.keyframes.size();
  FD_CHECK(n >= 1, ErrorCode::Argument, "feature cache: the plan has no evaluations");
  FD_CHECK(plan.keyframes[0], ErrorCode::Argument, "feature cache: evaluation 0 must be a keyframe (nothing is cached before it)");
  FD_CHECK(plan.skips.empty() || plan.skips.size() == n, ErrorCode::Argument, "feature cache: ", plan.skips.size(),
           " skip flags for ", n, " evaluations");
  for (size_t i = 0; i < plan.skips.size(); ++i)
    FD_CHECK(!(plan.skips[i] && plan.keyframes[i]), ErrorCode::Argument, "feature cache: evaluation ", i,
             " is both a keyframe and skipped");
  FD_CHECK(std::isfinite(plan.slope) && plan.slope != 0 && std::isfinite(plan.bias), ErrorCode::Argument,
           "feature cache: score mixing needs a finite nonzero slope and a finite bias, got slope ", plan.slope,
           ", bias ", plan.bias);
  const bool any_reuse = std::any_of(plan.keyframes.begin(), plan.keyframes.end(), [](bool k) { return !k; });
  FD_CHECK(!any_reuse || !plan.points.empty() || plan.score_mixing || !plan.skips.empty(), ErrorCode::Argument,
           "feature cache: the plan reuses no points (give the points to reuse)");
}

double mixing_lambda(const ReusePlan& plan, double r) {
  return std::clamp((plan.slope * (r - plan.bias) + 2.0) / 4.0, 0.0, 1.0);
}

StepDecision FeatureCache::next() {
  FD_CHECK(plan.has_value(), ErrorCode::Argument, "feature cache: next() needs a plan (configure the cache first)");
  const int64_t total = int64_t(plan->keyframes.size());
  FD_CHECK(evaluation < total, ErrorCode::Argument, "feature cache: evaluation ", evaluation + 1, " asked, but the plan has ",
           total, " (reset() between trajectories; the plan must match the solver's evaluations)");
  StepDecision d;
  d.index = evaluation++;
  if (plan->keyframes[size_t(d.index)]) return d;  // Full
  FD_CHECK(eps_key != nullptr, ErrorCode::Argument, "feature cache: evaluation ", d.index,
           " reuses features, but no keyframe ran since reset()");
  if (!plan->skips.empty() && plan->skips[size_t(d.index)]) {
    d.action = StepDecision::Skip;
    return d;
  }
  d.action = StepDecision::Reuse;
  if (plan->score_mixing) {
    d.lambda = mixing_lambda(*plan, double(d.index) / double(total));
    if (d.lambda < 1e-10) d.action = StepDecision::Skip;  // a jump: the previous ε, no network
  }
  return d;
}

}  // namespace fd::nn
