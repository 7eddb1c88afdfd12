#include "allocator.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "error.h"
#include "huge_heap.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace fd {
namespace {

// Size classes: exact multiples of 64 B below 4 KiB, then 8 classes per doubling,
// so at most 12.5% of a block is slack.
size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 64;
  if (bytes <= 4096) return (bytes + 63) & ~size_t(63);
  size_t pow2 = size_t(1) << (63 - __builtin_clzll(bytes));
  const size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}

struct FreeList {
  std::vector<void*> blocks;
  uint64_t last_use = 0;  // State::tick when a block of this class was last cached or handed out
};

// The default cap: a quarter of physical memory, at least 2 GiB. Sampling the UNet teacher at batch 250 cycles
// through 2.4 GB of distinct blocks (1.4 GB live at its peak: one list per size class); under a 2 GiB cap
// the least recently used classes were evicted every step and faulted back in, and 10 DDIM steps took 12.0 s
// instead of 6.4 (bench/RESULTS.md).
int64_t default_cache_limit() {
  int64_t limit = int64_t(2048) << 20;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) limit = std::max(limit, int64_t(pages) * int64_t(page) / 4);
#endif
  return limit;
}

struct State {
  std::mutex mutex;
  std::map<size_t, FreeList> free_lists;
  uint64_t tick = 0;
  MemoryStats stats;
  int64_t cache_limit = [] {
    const char* env = std::getenv("FASTDIFF_CACHE_MB");
    return env ? std::atoll(env) * (int64_t(1) << 20) : default_cache_limit();
  }();
};

State& state() {
  static State* s = new State;  // never destroyed: storages may be freed during exit
  return *s;
}

// Blocks from the system: large ones from the huge-page heap, the rest from malloc.
void* system_allocate(size_t cls) {
  return cls >= huge_heap::kMinBytes ? huge_heap::allocate(cls) : std::aligned_alloc(64, cls);
}

void system_release(void* p, size_t cls) {
  if (cls >= huge_heap::kMinBytes)
    huge_heap::release(p, cls);
  else
    std::free(p);
}

}  // namespace

HostAllocator& HostAllocator::instance() {
  static HostAllocator a;
  return a;
}

void* HostAllocator::allocate(size_t bytes, size_t* granted) {
  const size_t cls = size_class(bytes);
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.free_lists.find(cls);
    if (it != s.free_lists.end() && !it->second.blocks.empty()) {
      void* p = it->second.blocks.back();
      it->second.blocks.pop_back();
      it->second.last_use = ++s.tick;
      s.stats.cache_hits += 1;
      s.stats.cached_bytes -= cls;
      s.stats.live_bytes += cls;
      s.stats.live_blocks += 1;
      if (s.stats.live_bytes > s.stats.peak_bytes) s.stats.peak_bytes = s.stats.live_bytes;
      *granted = cls;
      return p;
    }
  }
  void* p = system_allocate(cls);
  if (!p) {
    empty_cache();
    p = system_allocate(cls);
  }
  if (!p) fail(ErrorCode::Memory, "out of host memory allocating ", bytes, " bytes");
  std::lock_guard<std::mutex> lock(s.mutex);
  s.stats.cache_misses += 1;
  s.stats.live_bytes += cls;
  s.stats.live_blocks += 1;
  if (s.stats.live_bytes > s.stats.peak_bytes) s.stats.peak_bytes = s.stats.live_bytes;
  *granted = cls;
  return p;
}

void HostAllocator::release(void* p, size_t granted) {
  if (!p) return;
  State& s = state();
  std::vector<std::pair<void*, size_t>> evicted;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stats.live_bytes -= granted;
    s.stats.live_blocks -= 1;
    // Room for this block: drop cached blocks of the least recently used other classes.
    while (s.stats.cached_bytes + int64_t(granted) > s.cache_limit) {
      FreeList* lru = nullptr;
      size_t lru_cls = 0;
      for (auto& [cls, list] : s.free_lists)
        if (cls != granted && !list.blocks.empty() && (!lru || list.last_use < lru->last_use)) lru = &list, lru_cls = cls;
      if (!lru) break;
      while (!lru->blocks.empty() && s.stats.cached_bytes + int64_t(granted) > s.cache_limit) {
        evicted.emplace_back(lru->blocks.back(), lru_cls);
        lru->blocks.pop_back();
        s.stats.cached_bytes -= lru_cls;
      }
    }
    if (s.stats.cached_bytes + int64_t(granted) <= s.cache_limit) {
      FreeList& list = s.free_lists[granted];
      list.blocks.push_back(p);
      list.last_use = ++s.tick;
      s.stats.cached_bytes += granted;
      p = nullptr;
    }
  }
  for (auto [q, cls] : evicted) system_release(q, cls);
  if (p) system_release(p, granted);
}

void HostAllocator::empty_cache() {
  State& s = state();
  std::map<size_t, FreeList> lists;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    lists.swap(s.free_lists);
    s.stats.cached_bytes = 0;
  }
  for (auto& [cls, list] : lists)
    for (void* p : list.blocks) system_release(p, cls);
}

MemoryStats HostAllocator::stats() {
  std::lock_guard<std::mutex> lock(state().mutex);
  MemoryStats s = state().stats;
  s.cache_limit = state().cache_limit;
  s.huge_mapped_bytes = huge_heap::stats().mapped_bytes;
  return s;
}

void HostAllocator::set_cache_limit(int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    state().cache_limit = bytes;
  }
  if (bytes <= 0) empty_cache();
}

}  // namespace fd
