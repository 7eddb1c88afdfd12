#include "tensor.h"

#include <algorithm>

#include "allocator.h"

namespace fd {

const char* dtype_name(Dtype) { return "float32"; }

std::string Device::str() const { return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index); }

std::shared_ptr<Storage> Storage::allocate(int64_t numel, Device device) {
  FD_CHECK(device.type == DeviceType::CPU, ErrorCode::Device, "allocate: device ", device.str(),
           " is not available in this build");
  FD_CHECK(numel >= 0 && numel < (int64_t(1) << 40), ErrorCode::Memory, "allocate: cannot allocate ", numel,
           " float32 elements");
  auto s = std::make_shared<Storage>();
  s->numel = numel;
  s->device = device;
  s->data = static_cast<float*>(HostAllocator::instance().allocate(size_t(numel) * sizeof(float), &s->bytes));
  return s;
}

Storage::~Storage() { HostAllocator::instance().release(data, bytes); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    FD_CHECK(d >= 0, ErrorCode::Shape, "negative dimension in shape ", shape_str(shape));
    if (d != 0 && n > (int64_t(1) << 40) / d) fail(ErrorCode::Shape, "shape ", shape_str(shape), " is too large");
    n *= d;
  }
  return n;
}

int64_t TensorImpl::numel() const { return shape_numel(shape); }

TensorPtr empty(const Shape& shape, Device device) {
  auto t = std::make_shared<TensorImpl>();
  t->shape = shape;
  t->storage = Storage::allocate(shape_numel(shape), device);
  return t;
}

TensorPtr alias(const TensorPtr& t, const Shape& shape, int64_t extra_offset) {
  auto v = std::make_shared<TensorImpl>();
  v->shape = shape;
  v->storage = t->storage;
  v->offset = t->offset + extra_offset;
  return v;
}

int64_t normalize_axis(const char* op, int64_t axis, int64_t ndim) {
  const int64_t a = axis < 0 ? axis + ndim : axis;
  FD_CHECK(a >= 0 && a < std::max<int64_t>(ndim, 1), ErrorCode::Shape, op, ": axis ", axis, " is out of range for a ",
           ndim, "-d tensor");
  return a;
}

std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t i = int64_t(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

void check_same_device(const char* op, const TensorPtr& a, const TensorPtr& b) {
  FD_CHECK(a->device() == b->device(), ErrorCode::Device, op, ": tensors are on different devices (",
           a->device().str(), " and ", b->device().str(), ")");
}

}  // namespace fd
