#include "rng.h"

#include <cmath>

#include "threadpool.h"

namespace fd {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = uint64_t(a) * b;
  *hi = uint32_t(p >> 32);
  *lo = uint32_t(p);
}

inline float unit_open_right(uint32_t w) { return float(w >> 8) * (1.0f / 16777216.0f); }

// Runs fn(block_index, words) for every 4-word block covering [0, n), in parallel.
template <typename Fn>
void for_blocks(int64_t n, uint64_t seed, uint64_t offset, Fn fn) {
  const int64_t blocks = (n + 3) / 4;
  ThreadPool::global().parallel_for(blocks, 4096, [&](int64_t b0, int64_t b1) {
    uint32_t w[4];
    for (int64_t b = b0; b < b1; ++b) {
      Philox4x32::block(seed, offset + uint64_t(b), w);
      fn(b, w);
    }
  });
}

}  // namespace

void Philox4x32::block(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c0, &hi0, &lo0);
    mulhilo(kMul1, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset, float low, float high) {
  const float span = high - low;
  for_blocks(n, seed, offset, [&](int64_t b, const uint32_t* w) {
    for (int j = 0; j < 4 && b * 4 + j < n; ++j) out[b * 4 + j] = low + span * unit_open_right(w[j]);
  });
}

void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for_blocks(n, seed, offset, [&](int64_t b, const uint32_t* w) {
    for (int pair = 0; pair < 2; ++pair) {
      const double u1 = (double(w[2 * pair] >> 8) + 1.0) * (1.0 / 16777216.0);
      const double u2 = double(w[2 * pair + 1] >> 8) * (1.0 / 16777216.0);
      const double r = std::sqrt(-2.0 * std::log(u1));
      const int64_t i = b * 4 + 2 * pair;
      if (i < n) out[i] = float(mean + stddev * float(r * std::cos(kTwoPi * u2)));
      if (i + 1 < n) out[i + 1] = float(mean + stddev * float(r * std::sin(kTwoPi * u2)));
    }
  });
}

void fill_dropout_mask(float* out, int64_t n, uint64_t seed, uint64_t offset, float p) {
  for_blocks(n, seed, offset, [&](int64_t b, const uint32_t* w) {
    for (int j = 0; j < 4 && b * 4 + j < n; ++j) out[b * 4 + j] = unit_open_right(w[j]) >= p ? 1.0f : 0.0f;
  });
}

}  // namespace fd
