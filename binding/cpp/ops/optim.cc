// Fused optimizer steps and EMA: one queued kernel per step updates every
// parameter in place, with optional NaN/Inf sanitizing and global-norm clipping
// computed on the stream (no synchronization with JS). On CUDA the whole step is
// a few multi-tensor launches and the clip scale never leaves the device.
#include <cmath>
#include <cstring>

#include "core/dispatch.h"
#include "core/stream.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/optim.h"
#endif

namespace fd::ops {
namespace {

struct GradList {
  std::vector<TensorPtr> params, grads, s1, s2;
  Device device;  // of every tensor in the list (CPU when the list is empty)
};

// Marks the tensors a step writes in place (parameters, state, gradients it sanitizes or
// clips) once the kernel has run, on every return path of the stream-side lambda.
struct WrittenOnExit {
  std::vector<const std::vector<TensorPtr>*> lists;
  ~WrittenOnExit() {
    for (const auto* l : lists)
      for (const TensorPtr& t : *l) mark_written(t);
  }
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
    // One device per step: the CUDA kernels update every tensor in the same launches.
    if (!l.params.empty()) check_same_device(op, l.params[0], p);
    check_same_device(op, p, p->grad);
    if (states >= 1) check_same_device(op, p, group.state1[i]);
    if (states >= 2) check_same_device(op, p, group.state2[i]);
    l.params.push_back(p), l.grads.push_back(p->grad);
    if (states >= 1) l.s1.push_back(group.state1[i]);
    if (states >= 2) l.s2.push_back(group.state2[i]);
  }
  if (!l.params.empty()) l.device = l.params[0]->device();
  return l;
}

// Writes (norm, scale, non-finite count) into the stats tensor, on whichever device it lives.
void write_stats(const TensorPtr& stats, const float values[3]) {
  if (!on_cuda(stats)) {
    std::memcpy(stats->data(), values, 3 * sizeof(float));
    return;
  }
#if FASTDIFF_WITH_CUDA
  cuda::set_device(stats->device().index);
  cuda::copy_h2d(stats->data(), values, 3);
#endif
}

// Sanitizes and measures the gradients (CPU tensors); returns the factor to scale them by.
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
    const float values[3] = {float(norm), scale, float(nonfinite)};
    write_stats(o.stats, values);
  }
  return scale;
}

void check_stats(const StepOptions& o, const GradList& l) {
  if (!o.stats) return;
  FD_CHECK(o.stats->numel() == 3, ErrorCode::Shape, "optimizer: stats tensor must have 3 elements");
  FD_CHECK(!on_cuda(o.stats) || l.device.type == DeviceType::CPU || o.stats->device() == l.device, ErrorCode::Device,
           "optimizer: the stats tensor is on ", o.stats->device().str(), " but the parameters are on ",
           l.device.str());
}

// Device-side gradient statistics for a CUDA step: a [3] tensor on the parameters'
// device (the caller's stats tensor when it lives there). Null when the step needs none.
TensorPtr device_stats(const GradList& l, const StepOptions& o) {
  if (l.device.type != DeviceType::CUDA || !(o.sanitize || o.max_grad_norm > 0.f || o.stats)) return nullptr;
  return o.stats && o.stats->device() == l.device ? o.stats : empty({3}, l.device);
}

#if FASTDIFF_WITH_CUDA
std::vector<cuda::OptimTensor> cuda_tensors(const GradList& l) {
  std::vector<cuda::OptimTensor> t(l.params.size());
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = {l.params[i]->data(), l.grads[i]->data(), i < l.s1.size() ? l.s1[i]->data() : nullptr,
            i < l.s2.size() ? l.s2[i]->data() : nullptr, l.params[i]->numel()};
  return t;
}

// Sanitizing and clipping of a CUDA step, all on the device; returns the device
// pointer of the clip scale (null: no preparation, scale 1).
const float* cuda_prepare(const GradList& l, const StepOptions& o, const TensorPtr& stats) {
  if (!stats) return nullptr;
  cuda::prepare_grads(cuda_tensors(l), o.sanitize, o.max_grad_norm, stats->data());
  return stats->data() + 1;
}

// After a CUDA step whose stats tensor lives on the CPU: copies the device stats
// there (this waits for the device, on the stream's worker thread only).
void cuda_finish(const StepOptions& o, const TensorPtr& stats) {
  if (o.stats && stats && o.stats != stats) cuda::copy_d2h(o.stats->data(), stats->data(), 3);
}
#endif

}  // namespace

void adam_step(OptimGroup& group, const kernels::AdamParams& hyper, const StepOptions& options) {
  GradList l = collect(group, "adam", 2);
  check_stats(options, l);
  const TensorPtr dstats = device_stats(l, options);
  launch("adam", [l, hyper, options, dstats] {
    const WrittenOnExit written{{&l.params, &l.grads, &l.s1, &l.s2}};
#if FASTDIFF_WITH_CUDA
    if (l.device.type == DeviceType::CUDA) {
      cuda::set_device(l.device.index);
      kernels::AdamParams h = hyper;
      h.grad_scale = 1.f;  // or the device-side clip scale
      const float* scale = cuda_prepare(l, options, dstats);
      cuda::adam_multi(cuda_tensors(l), h, scale);
      cuda_finish(options, dstats);
      return;
    }
#endif
    kernels::AdamParams h = hyper;
    h.grad_scale = prepare_grads(l.grads, options);
    for (size_t i = 0; i < l.params.size(); ++i)
      kernels::adam_step(l.params[i]->numel(), l.params[i]->data(), l.grads[i]->data(), l.s1[i]->data(),
                         l.s2[i]->data(), h);
  });
}

void sgd_step(OptimGroup& group, float lr, float momentum, float weight_decay, bool nesterov,
              const StepOptions& options) {
  GradList l = collect(group, "sgd", momentum != 0.f ? 1 : 0);
  check_stats(options, l);
  const TensorPtr dstats = device_stats(l, options);
  launch("sgd", [=] {
    const WrittenOnExit written{{&l.params, &l.grads, &l.s1}};
#if FASTDIFF_WITH_CUDA
    if (l.device.type == DeviceType::CUDA) {
      cuda::set_device(l.device.index);
      const float* scale = cuda_prepare(l, options, dstats);
      cuda::sgd_multi(cuda_tensors(l), lr, momentum, weight_decay, nesterov, 1.f, scale);
      cuda_finish(options, dstats);
      return;
    }
#endif
    const float scale = prepare_grads(l.grads, options);
    for (size_t i = 0; i < l.params.size(); ++i)
      kernels::sgd_step(l.params[i]->numel(), l.params[i]->data(), l.grads[i]->data(),
                        momentum != 0.f ? l.s1[i]->data() : nullptr, lr, momentum, weight_decay, nesterov, scale);
  });
}

void ema_update(const std::vector<TensorPtr>& ema, const std::vector<TensorPtr>& params, float decay) {
  FD_CHECK(ema.size() == params.size(), ErrorCode::Shape, "ema: ", ema.size(), " averages for ", params.size(),
           " parameters");
  for (size_t i = 0; i < ema.size(); ++i) {
    FD_CHECK(ema[i]->shape == params[i]->shape, ErrorCode::Shape, "ema: average ", shape_str(ema[i]->shape),
             " does not match parameter ", shape_str(params[i]->shape));
    check_same_device("ema", ema[0], ema[i]);
    check_same_device("ema", ema[i], params[i]);
  }
  [[maybe_unused]] const Device dev = ema.empty() ? Device{} : ema[0]->device();
  launch("ema", [=] {
    const WrittenOnExit written{{&ema}};
#if FASTDIFF_WITH_CUDA
    if (dev.type == DeviceType::CUDA) {
      cuda::set_device(dev.index);
      std::vector<cuda::OptimTensor> t(ema.size());
      for (size_t i = 0; i < t.size(); ++i)
        t[i] = {ema[i]->data(), params[i]->data(), nullptr, nullptr, ema[i]->numel()};
      cuda::ema_multi(t, decay);
      return;
    }
#endif
    for (size_t i = 0; i < ema.size(); ++i)
      kernels::ema_update(ema[i]->numel(), ema[i]->data(), params[i]->data(), decay);
  });
}

}  // namespace fd::ops
