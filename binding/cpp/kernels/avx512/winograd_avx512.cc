// Winograd F(2×2, 3×3) transforms, AVX-512: the ISA layer for the shared body in
// simd/winograd_kernels.inl (compiled with the AVX-512 flags; internal linkage only).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "kernels/winograd.h"

namespace fd::kernels::wino::avx512 {
namespace {

constexpr int64_t W = 16;
using V = __m512;
inline __mmask16 tailmask(int64_t n) { return n >= 16 ? static_cast<__mmask16>(0xFFFF) : (n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u)); }
inline V vset(float a) { return _mm512_set1_ps(a); }
inline V vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
inline V vloadn(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tailmask(n), p); }
inline void vstoren(float* p, V v, int64_t n) { _mm512_mask_storeu_ps(p, tailmask(n), v); }
inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
// e[j] = src[2j], o[j] = src[2j + 1], j < n.
inline void deint(const float* src, int64_t n, float* e, float* o) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const V a = _mm512_loadu_ps(src + 2 * j), b = _mm512_loadu_ps(src + 2 * j + 16);
    _mm512_storeu_ps(e + j, _mm512_permutex2var_ps(a, ie, b));
    _mm512_storeu_ps(o + j, _mm512_permutex2var_ps(a, io, b));
  }
  if (j < n) {
    const int64_t r = 2 * (n - j);  // floats left to read
    const V a = vloadn(src + 2 * j, r), b = vloadn(src + 2 * j + 16, r - 16);
    vstoren(e + j, _mm512_permutex2var_ps(a, ie, b), n - j);
    vstoren(o + j, _mm512_permutex2var_ps(a, io, b), n - j);
  }
}

#include "kernels/simd/winograd_kernels.inl"

}  // namespace
const Kernels* kernels() { return &kWinoKernels; }
}  // namespace fd::kernels::wino::avx512
