// Host memory for tensors. A caching allocator: freed blocks go to per-size-class
// free lists and are handed out again, so a training loop that allocates the same
// activations every step does not return pages to the OS and fault them back in
// (PERF.md: page faults cost PyTorch up to 1.43× at batch 16–64). When the cache is
// full, the size classes used longest ago make room for the block being freed, so a
// workload that changes its sizes (a sampler moving from batch 250 to a guided 500)
// is cached again instead of faulting every block in. Thread-safe: blocks are freed
// on the stream worker as often as on the JS thread.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fd {

struct MemoryStats {
  int64_t live_bytes = 0;     // bytes held by live storages
  int64_t cached_bytes = 0;   // freed bytes kept for reuse
  int64_t peak_bytes = 0;
  int64_t live_blocks = 0;
  int64_t cache_hits = 0;    // allocations served from the cache
  int64_t cache_misses = 0;  // allocations that went to the system
  int64_t cache_limit = 0;   // the most cached_bytes may reach
  int64_t huge_mapped_bytes = 0;  // regions of the huge-page heap (huge_heap.h) that hold the large blocks
};

class HostAllocator {
 public:
  static HostAllocator& instance();
  // 64-byte aligned; throws fd::Error(ERR_MEMORY) when the system is out of memory.
  void* allocate(size_t bytes, size_t* granted);
  void release(void* p, size_t granted);
  void empty_cache();
  MemoryStats stats();
  // Upper bound on cached bytes (FASTDIFF_CACHE_MB; default a quarter of physical memory, at least 2 GiB).
  void set_cache_limit(int64_t bytes);
};

}  // namespace fd
