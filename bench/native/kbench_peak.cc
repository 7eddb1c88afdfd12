// Measures this machine's FP32 FMA peak: independent chains of 512-bit (and
// 256-bit) FMAs, enough to cover FMA latency, on 1..N threads of the engine's
// pool. Prints JSON: {"fma_gflops": {"1": x, "2": y}, "isa": "..."}.
#include <immintrin.h>

#include <chrono>
#include <cstdio>

#include "core/cpu.h"
#include "core/threadpool.h"

namespace {

constexpr long kIters = 40'000'000;

__attribute__((target("avx512f"), noinline)) float chains512(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) float chains256(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float out[8];
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  _mm256_storeu_ps(out, s);
  return out[0];
}

double measure(int threads, bool zmm) {
  fd::ThreadPool::global().resize(threads);
  const long iters = zmm ? kIters / 2 : kIters;
  const double flops_per_thread = double(iters) * 12 * (zmm ? 16 : 8) * 2;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    volatile float sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
    fd::ThreadPool::global().run_on_all([&](int, int) { sink = sink + (zmm ? chains512(iters) : chains256(iters)); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double g = flops_per_thread * threads / s / 1e9;
    if (g > best) best = g;
  }
  return best;
}

}  // namespace

int main() {
  const bool zmm = fd::best_isa() == fd::Isa::Avx512;
  const double one = measure(1, zmm), two = measure(2, zmm);
  std::printf("{\"isa\": \"%s\", \"fma_gflops\": {\"1\": %.1f, \"2\": %.1f}}\n", zmm ? "avx512" : "avx2", one, two);
  return 0;
}
