// CUDA optimizer steps: the twins of kernels::adam_step, sgd_step and ema_update
// (same signatures and float32 arithmetic, in the scalar reference's order), and
// multi-tensor forms that update a whole parameter list in a few launches (the
// tensor table travels as a kernel argument: no host↔device copy, no sync).
// Device pointers, current device's stream.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/vector.h"

namespace fd::cuda {

using kernels::AdamParams;

void adam_step(int64_t n, float* param, const float* grad, float* m, float* v, const AdamParams& p);
void sgd_step(int64_t n, float* param, const float* grad, float* buf, float lr, float momentum, float weight_decay,
              bool nesterov, float grad_scale);
void ema_update(int64_t n, float* ema, const float* param, float decay);

// One parameter of a multi-tensor step: s1 = Adam m / SGD momentum buffer (may be
// null), s2 = Adam v. EMA uses param = the average and grad = the parameter.
struct OptimTensor {
  float* param;
  float* grad;
  float* s1;
  float* s2;
  int64_t n;
};

// Replaces NaN/±Inf gradient entries by 0 when `sanitize`, then measures the
// global L2 norm and writes stats[0..2] = (norm before clipping, clip scale,
// non-finite count) in device memory; scale = max_norm/(norm + 1e-6) when
// max_norm > 0 and norm > max_norm, else 1 (the CPU's formula, in double). The
// reduction order is fixed: deterministic.
void prepare_grads(const std::vector<OptimTensor>& tensors, bool sanitize, float max_norm, float* stats);

// grad_scale: a device pointer to the factor (stats + 1 after prepare_grads), or
// null to use the host value (p.grad_scale / grad_scale). Nothing is read back.
void adam_multi(const std::vector<OptimTensor>& tensors, const AdamParams& p, const float* grad_scale);
void sgd_multi(const std::vector<OptimTensor>& tensors, float lr, float momentum, float weight_decay, bool nesterov,
               float grad_scale, const float* grad_scale_device);
void ema_multi(const std::vector<OptimTensor>& tensors, float decay);

}  // namespace fd::cuda
