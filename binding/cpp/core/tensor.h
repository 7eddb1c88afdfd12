// Tensor: shape + dtype + device over shared, refcounted storage. Always
// contiguous row-major; `offset` lets reshape and leading-dim split share the
// storage without copying. Autograd metadata lives here too (see autograd.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "error.h"

namespace fd {
namespace kernels {
struct PackedMatrix;
}

enum class Dtype { Float32 };
const char* dtype_name(Dtype d);

enum class DeviceType { CPU, CUDA };
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

using Shape = std::vector<int64_t>;

// Owns one allocation. Freed when the last tensor (or queued kernel) lets go.
struct Storage {
  float* data = nullptr;
  int64_t numel = 0;
  size_t bytes = 0;
  Device device;
  // Counts in-place writes (copy_, optimizer steps, EMA), bumped on the stream right after
  // the write (mark_written). Caches derived from the values are valid for one version.
  std::atomic<uint64_t> version{0};
  // The weight kept packed for linear / conv2d (ops/packed_weight.h), made from
  // `packed_version` at `packed_offset`; guarded by the mutex there.
  std::shared_ptr<const kernels::PackedMatrix> packed;
  uint64_t packed_version = 0;
  int64_t packed_offset = 0;
  static std::shared_ptr<Storage> allocate(int64_t numel, Device device);
  ~Storage();
};

struct Node;
struct TensorImpl;
using TensorPtr = std::shared_ptr<TensorImpl>;

struct TensorImpl {
  Shape shape;
  Dtype dtype = Dtype::Float32;
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements

  // ---- autograd ----
  bool requires_grad = false;     // leaf flag (set by the user on parameters and inputs)
  std::shared_ptr<Node> grad_fn;  // the node that produced this tensor (null for leaves)
  int output_nr = 0;              // which output of grad_fn this is
  TensorPtr grad;                 // accumulated gradient (leaves only)

  int64_t numel() const;
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  Device device() const { return storage->device; }
  float* data() const { return storage->data + offset; }
  bool needs_grad() const { return requires_grad || grad_fn != nullptr; }
};

// Records an in-place write of t's values (call on the stream, after the kernel wrote).
inline void mark_written(const TensorPtr& t) { t->storage->version.fetch_add(1, std::memory_order_release); }

int64_t shape_numel(const Shape& shape);
// New uninitialized tensor (contents written by the kernel that produces it).
TensorPtr empty(const Shape& shape, Device device = {});
// A tensor sharing `t`'s storage with another shape of the same numel (no grad metadata).
TensorPtr alias(const TensorPtr& t, const Shape& shape, int64_t extra_offset = 0);
// Normalizes a possibly negative axis; throws ERR_SHAPE naming `op`.
int64_t normalize_axis(const char* op, int64_t axis, int64_t ndim);
// Row-major strides in elements.
std::vector<int64_t> contiguous_strides(const Shape& shape);
void check_same_device(const char* op, const TensorPtr& a, const TensorPtr& b);

}  // namespace fd
