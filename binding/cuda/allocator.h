// Device memory interface. Every CUDA tensor's storage comes from a caching
// allocator (no cudaMalloc per op): freed blocks are kept per size class and
// reused on the same stream. The CPU build never includes this header.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fd::cuda {

struct DeviceMemoryStats {
  int64_t live_bytes = 0, cached_bytes = 0, peak_bytes = 0;
};

class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;
  // Returns device memory of at least `bytes` (rounded to the size class in *granted);
  // returns nullptr when the device is out of memory even after emptying the cache.
  virtual void* allocate(int device, size_t bytes, size_t* granted) = 0;
  virtual void release(int device, void* p, size_t granted) = 0;
  virtual void empty_cache(int device) = 0;
  virtual DeviceMemoryStats stats(int device) = 0;
};

// The process-wide caching allocator (defined in allocator.cu).
DeviceAllocator& device_allocator();

}  // namespace fd::cuda
