// Winograd F(2×2, 3×3) and F(4×4, 3×3) transforms, AVX2: the ISA layer for the shared body in
// simd/winograd_kernels.inl and simd/winograd4_kernels.inl (compiled with the AVX2 flags;
// internal linkage only).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/winograd.h"

namespace fd::kernels::wino::avx2 {
namespace {

constexpr int64_t W = 8;
using V = __m256;
inline __m256i tailmask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 0 ? 0 : (n > 8 ? 8 : n))), idx);
}
inline V vset(float a) { return _mm256_set1_ps(a); }
inline V vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
inline V vloadn(const float* p, int64_t n) { return _mm256_maskload_ps(p, tailmask(n)); }
inline void vstoren(float* p, V v, int64_t n) { _mm256_maskstore_ps(p, tailmask(n), v); }
inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
// e[j] = src[2j], o[j] = src[2j + 1], j < n.
inline void deint(const float* src, int64_t n, float* e, float* o) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const V a = _mm256_loadu_ps(src + 2 * j), b = _mm256_loadu_ps(src + 2 * j + 8);
    const V ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
    const V od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm256_storeu_ps(e + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8)));
    _mm256_storeu_ps(o + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8)));
  }
  for (; j < n; ++j) {
    e[j] = src[2 * j];
    o[j] = src[2 * j + 1];
  }
}

// F(4×4) patch columns of one zero-padded input row (row[k] = x[k − pad], readable to
// 4·TW + 32): dst[j·RS + tw] = row[4tw + j], j < 6, tw < TW.
inline void cols4(const float* row, int64_t TW, float* dst, int64_t RS) {
  for (int j = 0; j < 6; ++j)
    for (int64_t tw = 0; tw < TW; ++tw) dst[j * RS + tw] = row[4 * tw + j];
}
// One F(4×4) output row from its four column phases: yr[k] = Y_{k mod 4}[k div 4], k < n,
// Y_j = y + j·RS.
inline void interleave4(const float* y, int64_t RS, int64_t n, float* yr) {
  for (int64_t k = 0; k < n; ++k) yr[k] = y[(k % 4) * RS + k / 4];
}

#include "kernels/simd/winograd_kernels.inl"
#include "kernels/simd/winograd4_kernels.inl"

}  // namespace
const Kernels* kernels(int m) { return m == 4 ? &kWino4Kernels : &kWinoKernels; }
}  // namespace fd::kernels::wino::avx2
