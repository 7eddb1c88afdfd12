// Tensor creation and copies. Random tensors come from the Philox stream keyed by
// (seed, offset) (core/rng.h), so values never depend on threads or devices: a
// CUDA tensor gets the same bits as a CPU one (cuda/rng.cu).
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "core/stream.h"
#include "core/dispatch.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/rng.h"
#include "cuda/shape.h"
#endif

namespace fd::ops {
namespace {

void fill_cpu(float* p, int64_t n, float value) {
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void arange_cpu(float* p, int64_t n, double start, double step) {
  for (int64_t i = 0; i < n; ++i) p[i] = float(start + double(i) * step);
}

void copy_cpu(float* dst, const float* src, int64_t n) {
  if (n > 0) std::memmove(dst, src, size_t(n) * sizeof(float));
}

// y ← x across devices (same shape): host↔device copies block until done (so the
// host side may be freed after), device↔device copies are stream-ordered.
void copy_across(const TensorPtr& x, const TensorPtr& y) {
  const int64_t n = y->numel();
#if FASTDIFF_WITH_CUDA
  const Device from = x->device(), to = y->device();
  if (from.type == DeviceType::CPU && to.type == DeviceType::CUDA) {
    cuda::set_device(to.index);
    cuda::copy_h2d(y->data(), x->data(), n);
    return;
  }
  if (from.type == DeviceType::CUDA && to.type == DeviceType::CPU) {
    cuda::set_device(from.index);
    cuda::copy_d2h(y->data(), x->data(), n);
    return;
  }
  if (from.type == DeviceType::CUDA && to.type == DeviceType::CUDA) {
    if (from.index == to.index) {
      cuda::set_device(to.index);
      cuda::copy_d2d(y->data(), x->data(), n);
    } else {
      cuda::copy_peer(y->data(), to.index, x->data(), from.index, n);
    }
    return;
  }
#endif
  copy_cpu(y->data(), x->data(), n);
}

struct CloneBackward : Node {
  const char* name() const override { return "clone"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override { return {g[0]}; }
};

// The gradient of a device move goes back to where the input lives.
struct ToDeviceBackward : Node {
  Device from;
  const char* name() const override { return "to"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    return {g[0] ? to_device(g[0], from) : nullptr};
  }
};

}  // namespace

TensorPtr from_data(const float* data, const Shape& shape) {
  TensorPtr t = empty(shape);
  // Copied now (the caller's buffer may not outlive the call); nothing queued reads it yet.
  if (t->numel() > 0) std::memcpy(t->data(), data, size_t(t->numel()) * sizeof(float));
  return t;
}

TensorPtr full(const Shape& shape, float value, Device device) {
  TensorPtr t = empty(shape, device);
  launch("full", [t, value, device] {
    FD_ON_DEVICE(device, fill_cpu(t->data(), t->numel(), value), cuda::fill(t->data(), t->numel(), value));
  });
  return t;
}

TensorPtr arange(double start, double end, double step, Device device) {
  FD_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step), ErrorCode::Argument,
           "arange: start, end and step must be finite and step non-zero (got ", start, ", ", end, ", ", step, ")");
  const double count = std::ceil((end - start) / step);
  const int64_t n = count > 0 ? int64_t(count) : 0;
  TensorPtr t = empty({n}, device);
  launch("arange", [t, start, step, n, device] {
    FD_ON_DEVICE(device, arange_cpu(t->data(), n, start, step), cuda::arange(t->data(), n, start, step));
  });
  return t;
}

TensorPtr rand(const Shape& shape, uint64_t seed, uint64_t offset, float low, float high, Device device) {
  TensorPtr t = empty(shape, device);
  launch("rand", [=] {
    FD_ON_DEVICE(device, fill_uniform(t->data(), t->numel(), seed, offset, low, high),
                 cuda::fill_uniform(t->data(), t->numel(), seed, offset, low, high));
  });
  return t;
}

TensorPtr randn(const Shape& shape, uint64_t seed, uint64_t offset, float mean, float stddev, Device device) {
  TensorPtr t = empty(shape, device);
  launch("randn", [=] {
    FD_ON_DEVICE(device, fill_normal(t->data(), t->numel(), seed, offset, mean, stddev),
                 cuda::fill_normal(t->data(), t->numel(), seed, offset, mean, stddev));
  });
  return t;
}

TensorPtr contiguous_copy(const TensorPtr& x) {
  TensorPtr y = empty(x->shape, x->device());
  const Device dev = x->device();
  launch("clone", [=] {
    FD_ON_DEVICE(dev, copy_cpu(y->data(), x->data(), y->numel()), cuda::copy_d2d(y->data(), x->data(), y->numel()));
  });
  if (any_requires_grad({&x})) record(std::make_shared<CloneBackward>(), {x}, {y});
  return y;
}

void copy_(const TensorPtr& dst, const TensorPtr& src) {
  FD_CHECK(dst->shape == src->shape, ErrorCode::Shape, "copy_: shapes ", shape_str(dst->shape), " and ",
           shape_str(src->shape), " differ");
  check_same_device("copy_", dst, src);
  const Device dev = dst->device();
  launch("copy_", [=] {
    FD_ON_DEVICE(dev, copy_cpu(dst->data(), src->data(), dst->numel()),
                 cuda::copy_d2d(dst->data(), src->data(), dst->numel()));
    mark_written(dst);
  });
}

TensorPtr to_device(const TensorPtr& x, Device device) {
  if (x->device() == device) return x;
  TensorPtr y = empty(x->shape, device);
  launch("to", [x, y] { copy_across(x, y); });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<ToDeviceBackward>();
    node->from = x->device();
    record(node, {x}, {y});
  }
  return y;
}

}  // namespace fd::ops
