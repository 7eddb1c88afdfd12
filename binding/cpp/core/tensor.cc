#include "tensor.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "allocator.h"
#include "dispatch.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/allocator.h"
#endif

namespace fd {

const char* dtype_name(Dtype) { return "float32"; }

std::string Device::str() const { return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index); }

namespace {
#if FASTDIFF_WITH_CUDA
float* allocate_on_device(Device device, size_t bytes, size_t* granted) {
  const int count = cuda::device_count();
  FD_CHECK(device.index >= 0 && device.index < count, ErrorCode::Device, "allocate: ", device.str(),
           " is not available (", count, " CUDA device", count == 1 ? "" : "s", " found)");
  void* p = cuda::device_allocator().allocate(device.index, bytes, granted);
  if (!p) {
    const auto st = cuda::device_allocator().stats(device.index);
    fail(ErrorCode::OutOfMemory, "allocate: out of memory on ", device.str(), " requesting ", bytes, " bytes (",
         st.live_bytes, " bytes live, cache emptied)");
  }
  // FASTDIFF_CUDA_POISON=1 (the GPU tests): new blocks hold NaN, so an element a kernel forgets to
  // write shows up. Safe to issue from here: a reused block's last readers are already on the stream.
  static const bool poison = [] {
    const char* env = std::getenv("FASTDIFF_CUDA_POISON");
    return env && env[0] == '1';
  }();
  if (poison) {
    cuda::set_device(device.index);
    cuda::fill(static_cast<float*>(p), int64_t(bytes / sizeof(float)), std::numeric_limits<float>::quiet_NaN());
  }
  return static_cast<float*>(p);
}
#else
float* allocate_on_device(Device device, size_t, size_t*) {
  fail(ErrorCode::Device, "allocate: ", device.str(),
       " is not available: this build of fastdiff was compiled without CUDA (rebuild with FASTDIFF_CUDA=on)");
}
#endif
}  // namespace

std::shared_ptr<Storage> Storage::allocate(int64_t numel, Device device) {
  FD_CHECK(numel >= 0 && numel < (int64_t(1) << 40), ErrorCode::Memory, "allocate: cannot allocate ", numel,
           " float32 elements");
  const size_t bytes = size_t(numel) * sizeof(float);
  auto s = std::make_shared<Storage>();
  s->numel = numel;
  s->device = device;
  s->data = device.type == DeviceType::CPU ? static_cast<float*>(HostAllocator::instance().allocate(bytes, &s->bytes))
                                           : allocate_on_device(device, bytes, &s->bytes);
  return s;
}

// A CUDA block goes back to the cache at once: only later work on the same stream can
// reuse it, and that work runs after every kernel already queued on it.
Storage::~Storage() {
  if (device.type == DeviceType::CPU) {
    HostAllocator::instance().release(data, bytes);
    return;
  }
#if FASTDIFF_WITH_CUDA
  cuda::device_allocator().release(device.index, data, bytes);
#endif
}

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
