// Tensor creation. Random tensors come from the Philox stream keyed by
// (seed, offset) (core/rng.h), so values never depend on threads or devices.
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "core/stream.h"
#include "ops.h"

namespace fd::ops {

TensorPtr from_data(const float* data, const Shape& shape) {
  TensorPtr t = empty(shape);
  // Copied now (the caller's buffer may not outlive the call); nothing queued reads it yet.
  if (t->numel() > 0) std::memcpy(t->data(), data, size_t(t->numel()) * sizeof(float));
  return t;
}

TensorPtr full(const Shape& shape, float value) {
  TensorPtr t = empty(shape);
  launch("full", [t, value] {
    float* p = t->data();
    for (int64_t i = 0, n = t->numel(); i < n; ++i) p[i] = value;
  });
  return t;
}

TensorPtr arange(double start, double end, double step) {
  FD_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step), ErrorCode::Argument,
           "arange: start, end and step must be finite and step non-zero (got ", start, ", ", end, ", ", step, ")");
  const double count = std::ceil((end - start) / step);
  const int64_t n = count > 0 ? int64_t(count) : 0;
  TensorPtr t = empty({n});
  launch("arange", [t, start, step, n] {
    float* p = t->data();
    for (int64_t i = 0; i < n; ++i) p[i] = float(start + double(i) * step);
  });
  return t;
}

TensorPtr rand(const Shape& shape, uint64_t seed, uint64_t offset, float low, float high) {
  TensorPtr t = empty(shape);
  launch("rand", [=] { fill_uniform(t->data(), t->numel(), seed, offset, low, high); });
  return t;
}

TensorPtr randn(const Shape& shape, uint64_t seed, uint64_t offset, float mean, float stddev) {
  TensorPtr t = empty(shape);
  launch("randn", [=] { fill_normal(t->data(), t->numel(), seed, offset, mean, stddev); });
  return t;
}

namespace {
struct CloneBackward : Node {
  const char* name() const override { return "clone"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override { return {g[0]}; }
};
}  // namespace

TensorPtr contiguous_copy(const TensorPtr& x) {
  TensorPtr y = empty(x->shape, x->device());
  launch("clone", [=] { std::memcpy(y->data(), x->data(), size_t(y->numel()) * sizeof(float)); });
  if (any_requires_grad({&x})) record(std::make_shared<CloneBackward>(), {x}, {y});
  return y;
}

void copy_(const TensorPtr& dst, const TensorPtr& src) {
  FD_CHECK(dst->shape == src->shape, ErrorCode::Shape, "copy_: shapes ", shape_str(dst->shape), " and ",
           shape_str(src->shape), " differ");
  check_same_device("copy_", dst, src);
  launch("copy_", [=] { std::memmove(dst->data(), src->data(), size_t(dst->numel()) * sizeof(float)); });
}

}  // namespace fd::ops
