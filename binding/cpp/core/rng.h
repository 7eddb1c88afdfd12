// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11), keyed by
// (seed, offset), so every element is a pure function of its index and the result
// never depends on threads, devices or call order.
//
// Contract (CUDA reproduces it exactly):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (c & 0xffffffff, c >> 32, 0, 0) with c = offset + i / 4
//   word    = philox4x32_10(counter, key)[i % 4]
//   rand:  u = (word >> 8) · 2⁻²⁴ ∈ [0, 1)
//   randn: block c gives two Box–Muller pairs: (w0, w1) → normals 0 and 1, (w2, w3) →
//          normals 2 and 3, with u1 = ((w_even >> 8) + 1) · 2⁻²⁴ ∈ (0, 1],
//          u2 = (w_odd >> 8) · 2⁻²⁴, r = sqrt(−2 ln u1): z_even = r cos(2π u2),
//          z_odd = r sin(2π u2); computed in double, rounded to float32.
// A call consuming n elements advances a generator's offset by ceil(n / 4).
#pragma once
#include <cstdint>

namespace fd {

struct Philox4x32 {
  static void block(uint64_t seed, uint64_t counter, uint32_t out[4]);
};

void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset, float low, float high);
void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev);
// keep[i] = 1 with probability 1 - p (uniform from the same stream as fill_uniform).
void fill_dropout_mask(float* out, int64_t n, uint64_t seed, uint64_t offset, float p);
inline uint64_t philox_blocks(int64_t n) { return static_cast<uint64_t>((n + 3) / 4); }

}  // namespace fd
