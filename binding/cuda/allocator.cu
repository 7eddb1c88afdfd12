// Caching device allocator: size classes (64 B multiples below 4 KiB, then 8 per
// doubling), per-device free lists, cudaMalloc only on a cache miss; on failure
// the cache is emptied and the allocation retried once.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <vector>

#include "allocator.h"

namespace fd::cuda {
namespace {

size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 64;
  if (bytes <= 4096) return (bytes + 63) & ~size_t(63);
  const size_t pow2 = size_t(1) << (63 - __builtin_clzll(bytes));
  const size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}

class CachingAllocator final : public DeviceAllocator {
 public:
  void* allocate(int device, size_t bytes, size_t* granted) override {
    const size_t cls = size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    PerDevice& d = devices_[device];
    *granted = cls;
    auto it = d.free.find(cls);
    if (it != d.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      d.stats.cached_bytes -= cls;
      note_live(d, cls);
      return p;
    }
    void* p = nullptr;
    cudaSetDevice(device);
    if (cudaMalloc(&p, cls) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error state
      release_cached(d);
      if (cudaMalloc(&p, cls) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
      }
    }
    note_live(d, cls);
    return p;
  }

  void release(int device, void* p, size_t granted) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    PerDevice& d = devices_[device];
    d.stats.live_bytes -= granted;
    d.free[granted].push_back(p);
    d.stats.cached_bytes += granted;
  }

  void empty_cache(int device) override {
    std::lock_guard<std::mutex> lock(mutex_);
    cudaSetDevice(device);
    release_cached(devices_[device]);
  }

  DeviceMemoryStats stats(int device) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return devices_[device].stats;
  }

 private:
  struct PerDevice {
    std::map<size_t, std::vector<void*>> free;
    DeviceMemoryStats stats;
  };

  static void note_live(PerDevice& d, size_t bytes) {
    d.stats.live_bytes += bytes;
    if (d.stats.live_bytes > d.stats.peak_bytes) d.stats.peak_bytes = d.stats.live_bytes;
  }

  static void release_cached(PerDevice& d) {
    for (auto& [cls, blocks] : d.free)
      for (void* p : blocks) cudaFree(p);
    d.free.clear();
    d.stats.cached_bytes = 0;
  }

  std::mutex mutex_;
  std::map<int, PerDevice> devices_;
};

}  // namespace

DeviceAllocator& device_allocator() {
  static CachingAllocator* allocator = new CachingAllocator;  // never destroyed (outlives CUDA teardown)
  return *allocator;
}

}  // namespace fd::cuda
