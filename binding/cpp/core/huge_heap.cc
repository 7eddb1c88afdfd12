#include "huge_heap.h"

#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fd::huge_heap {
namespace {

struct Region {
  size_t size = 0;
  size_t used = 0;
  std::map<size_t, size_t> free;  // offset → length, coalesced
};

struct State {
  std::mutex mutex;
  std::map<uintptr_t, Region> regions;  // by base address
  Stats stats;
};

State& state() {
  static State* s = new State;  // never destroyed: thread-local scratch is released during exit
  return *s;
}

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

void* map_region(size_t size) {
  static const bool hint = [] {  // FASTDIFF_HUGE_PAGES=0: plain 4 KiB pages (the layout stays)
    const char* env = std::getenv("FASTDIFF_HUGE_PAGES");
    return !(env && env[0] == '0' && env[1] == 0);
  }();
#if defined(__linux__)
  const size_t span = size + kPageBytes;  // room to align the start to a huge page
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t r = reinterpret_cast<uintptr_t>(raw), a = round_up(r, kPageBytes);
  if (a > r) munmap(raw, a - r);
  if (r + span > a + size) munmap(reinterpret_cast<void*>(a + size), r + span - (a + size));
#ifdef MADV_HUGEPAGE
  if (hint) madvise(reinterpret_cast<void*>(a), size, MADV_HUGEPAGE);  // a hint: where refused, 4 KiB pages
#endif
  return reinterpret_cast<void*>(a);
#else
  return std::aligned_alloc(kPageBytes, size);
#endif
}

void unmap_region(uintptr_t base, size_t size) {
#if defined(__linux__)
  munmap(reinterpret_cast<void*>(base), size);
#else
  (void)size;
  std::free(reinterpret_cast<void*>(base));
#endif
}

// First fit in one region: the block at the start of the first free range long enough.
void* carve(uintptr_t base, Region& r, size_t bytes) {
  for (auto it = r.free.begin(); it != r.free.end(); ++it) {
    if (it->second < bytes) continue;
    const size_t off = it->first, rest = it->second - bytes;
    r.free.erase(it);
    if (rest) r.free.emplace(off + bytes, rest);
    r.used += bytes;
    return reinterpret_cast<void*>(base + off);
  }
  return nullptr;
}

}  // namespace

void* allocate(size_t bytes) {
  bytes = round_up(bytes ? bytes : 1, 64);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (bytes <= kRegionBytes)
    for (auto& [base, r] : s.regions)
      if (void* p = carve(base, r, bytes)) {
        s.stats.used_bytes += int64_t(bytes);
        return p;
      }
  const size_t size = bytes <= kRegionBytes ? kRegionBytes : round_up(bytes, kPageBytes);
  void* mem = map_region(size);
  if (!mem) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(mem);
  Region& r = s.regions[base];
  r.size = size;
  r.free.emplace(0, size);
  s.stats.mapped_bytes += int64_t(size);
  s.stats.regions += 1;
  s.stats.used_bytes += int64_t(bytes);
  return carve(base, r, bytes);
}

void release(void* p, size_t bytes) {
  if (!p) return;
  bytes = round_up(bytes ? bytes : 1, 64);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto rit = std::prev(s.regions.upper_bound(a));
  const uintptr_t base = rit->first;
  Region& r = rit->second;
  size_t off = a - base, len = bytes;
  // Coalesce with the free ranges on either side.
  auto next = r.free.lower_bound(off);
  if (next != r.free.end() && next->first == off + len) {
    len += next->second;
    next = r.free.erase(next);
  }
  if (next != r.free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      off = prev->first;
      len += prev->second;
      r.free.erase(prev);
    }
  }
  r.free.emplace(off, len);
  r.used -= bytes;
  s.stats.used_bytes -= int64_t(bytes);
  if (r.used) return;
  bool spare_elsewhere = false;
  for (const auto& [b, other] : s.regions)
    if (b != base && other.used == 0) spare_elsewhere = true;
  if (r.size == kRegionBytes && !spare_elsewhere) return;  // kept as the spare
  s.stats.mapped_bytes -= int64_t(r.size);
  s.stats.regions -= 1;
  unmap_region(base, r.size);
  s.regions.erase(rit);
}

Stats stats() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().stats;
}

}  // namespace fd::huge_heap
