// Grow-only 64-byte-aligned scratch, one per thread and use, kept across calls (kernels
// run on pool threads; allocation failure returns null instead of throwing).
#pragma once
#include <cstddef>
#include <cstdlib>

namespace fd::kernels {

struct ScratchBuf {
  float* p = nullptr;
  size_t cap = 0;  // floats
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64 + 64));
      cap = p ? n : 0;
    }
    return p;
  }
  ~ScratchBuf() { std::free(p); }
};

}  // namespace fd::kernels
