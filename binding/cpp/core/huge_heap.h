// Large host blocks (≥ kMinBytes: tensors, kept weight packs, packing scratch) carved from 2 MiB-aligned
// regions that the kernel is asked to back with transparent huge pages (madvise MADV_HUGEPAGE). Why: a network's
// weights and activations (31 MB of packed weights per DiT forward) span thousands of 4 KiB pages, more than the
// TLB holds, and in a virtual machine every miss is a two-level page walk; on 2 MiB pages the DiT forward at
// batch 1 ran 2–3% faster (bench/RESULTS.md 2026-12-07 (d)). glibc maps each large block on its own 4 KiB pages
// (THP is "madvise" on Debian and most distributions), hence a heap of our own.
//
// Regions are reserved virtual memory: a page becomes resident when first touched, 2 MiB at a time where the
// kernel grants huge pages. Blocks are placed first-fit in kRegionBytes regions (a larger block gets a region of
// its own); a region is returned to the system once nothing in it is used, except one kept spare so that a loop
// allocating and freeing one block does not map and fault a region every time. Thread-safe. Where the system
// has no madvise (non-Linux), regions are ordinary aligned allocations. FASTDIFF_HUGE_PAGES=0 (read once) leaves
// out the hint: the same regions on 4 KiB pages.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fd::huge_heap {

constexpr size_t kMinBytes = size_t(64) << 10;     // smaller blocks stay with malloc
constexpr size_t kPageBytes = size_t(2) << 20;     // region alignment: one huge page
constexpr size_t kRegionBytes = size_t(32) << 20;  // blocks up to this size share regions

// A 64-byte-aligned block of at least `bytes`; null when the system has no memory for it.
void* allocate(size_t bytes);
// `bytes` as passed to allocate.
void release(void* p, size_t bytes);

struct Stats {
  int64_t mapped_bytes = 0;  // regions held, spare included
  int64_t used_bytes = 0;    // blocks handed out and not released
  int64_t regions = 0;
};
Stats stats();

}  // namespace fd::huge_heap
