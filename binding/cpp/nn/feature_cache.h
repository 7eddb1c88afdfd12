// The FRDiff / DeepCache feature cache (METHODS.md §6): a plan (which points to reuse, which evaluations are
// keyframes, score mixing) and the runtime state of one sampling trajectory (the evaluation counter, cached
// point values, the last outputs as ε = (x̂ − D)/σ). `reset()` starts a new trajectory and keeps the plan.
//
// A cache without a plan is driven by hand: each forward names what it stores and reuses (Network.forward).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace fd::nn {

struct ReusePlan {
  // Points served from the cache at non-keyframe evaluations (globs; FRDiff: the network's reuse_points(),
  // DeepCache: its deep branch).
  std::vector<std::string> points;
  // One entry per network evaluation of the run (N for one-evaluation solvers, 2N − 1 for Heun): true runs the
  // full network and refreshes the cache. Entry 0 must be true.
  std::vector<bool> keyframes;
  // Evaluations that run no network at all and reuse the previous evaluation's ε (Auto-FR's learned jumps);
  // empty or one entry per evaluation.
  std::vector<bool> skips;
  // Score mixing (METHODS.md §6): at non-keyframe i of E evaluations, r = i/E,
  // λ = clip((slope·(r − bias) + 2)/4, 0, 1); ε = λ·ε_FR + (1 − λ)·ε_key, the network skipped where λ < 1e-10.
  // slope > 0 (the paper's): jumps early, reuse late; slope < 0: reuse early, jumps late.
  bool score_mixing = false;
  double slope = 30.0, bias = 0.5;
};

// What one evaluation does.
struct StepDecision {
  enum Action { Full, Reuse, Skip } action = Full;
  double lambda = 1.0;  // weight of the feature-reuse output (Reuse only; 1: no mixing)
  int64_t index = 0;    // the evaluation's index in the run
};

// Validates a plan (ERR_ARGUMENT naming what is wrong).
void check_plan(const ReusePlan& plan);
// λ(r) of score mixing.
double mixing_lambda(const ReusePlan& plan, double r);

struct FeatureCache {
  // ---- config ----
  std::optional<ReusePlan> plan;

  // ---- runtime state ----
  int64_t evaluation = 0;                             // index of the next evaluation
  std::unordered_map<std::string, TensorPtr> slots;  // point values
  Shape input_shape;                                  // the input of the forward that filled it: reuse must match
  TensorPtr eps_key, eps_prev;                        // ε of the last keyframe and of the last evaluation

  // Forgets the trajectory (values, counter, outputs); keeps the plan.
  void reset() {
    evaluation = 0;
    slots.clear();
    input_shape.clear();
    eps_key = eps_prev = nullptr;
  }
  // The decision for the next evaluation, advancing the counter (ERR_ARGUMENT past the planned count, and for a
  // non-keyframe with nothing cached yet).
  StepDecision next();
};

}  // namespace fd::nn
