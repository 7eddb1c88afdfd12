// Grow-only 64-byte-aligned scratch, one per thread and use, kept across calls (kernels
// run on pool threads; allocation failure returns null instead of throwing). Buffers of
// 2 MiB or more are 2 MiB-aligned and madvise(MADV_HUGEPAGE)d, so a large packed panel
// costs few TLB entries.
#pragma once
#include <cstddef>
#include <cstdlib>

#include <sys/mman.h>

namespace fd::kernels {

struct ScratchBuf {
  static constexpr size_t kHuge = size_t(2) << 20;
  float* p = nullptr;
  size_t cap = 0;  // floats
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      size_t bytes = ((n * sizeof(float) + 63) / 64) * 64 + 256;  // slack: vector tails may read past n
      if (bytes >= kHuge) {
        bytes = (bytes + kHuge - 1) / kHuge * kHuge;
        p = static_cast<float*>(std::aligned_alloc(kHuge, bytes));
#ifdef MADV_HUGEPAGE
        if (p) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure changes nothing
#endif
      } else {
        p = static_cast<float*>(std::aligned_alloc(64, bytes));
      }
      cap = p ? n : 0;
    }
    return p;
  }
  ~ScratchBuf() { std::free(p); }
};

}  // namespace fd::kernels
