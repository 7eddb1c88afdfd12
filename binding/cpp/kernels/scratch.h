// Grow-only 64-byte-aligned scratch, one per thread and use, kept across calls (kernels
// run on pool threads; allocation failure returns null instead of throwing). Large buffers
// come from the huge-page heap (core/huge_heap.h), so a packed panel costs few TLB entries.
#pragma once
#include <cstddef>
#include <cstdlib>

#include "core/huge_heap.h"

namespace fd::kernels {

struct ScratchBuf {
  float* p = nullptr;
  size_t cap = 0;    // floats
  size_t bytes = 0;  // as allocated
  float* get(size_t n) {
    if (n > cap) {
      drop();
      const size_t want = ((n * sizeof(float) + 63) / 64) * 64 + 256;  // slack: vector tails may read past n
      p = static_cast<float*>(want >= huge_heap::kMinBytes ? huge_heap::allocate(want) : std::aligned_alloc(64, want));
      bytes = p ? want : 0;
      cap = p ? n : 0;
    }
    return p;
  }
  void drop() {
    if (bytes >= huge_heap::kMinBytes)
      huge_heap::release(p, bytes);
    else
      std::free(p);
    p = nullptr, cap = 0, bytes = 0;
  }
  ~ScratchBuf() { drop(); }
};

}  // namespace fd::kernels
