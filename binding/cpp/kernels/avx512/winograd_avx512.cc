// Winograd F(2×2, 3×3) and F(4×4, 3×3) transforms, AVX-512: the ISA layer for the shared body in
// simd/winograd_kernels.inl and simd/winograd4_kernels.inl (compiled with the AVX-512 flags;
// internal linkage only).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

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
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
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

// F(4×4) patch columns of one zero-padded input row (row[k] = x[k − pad], readable to
// 4·TW + 32): dst[j·RS + tw] = row[4tw + j], j < 6, tw < TW. Seven tiles (28 columns + 2)
// per pair of loads, one two-source permute per patch column.
inline void cols4(const float* row, int64_t TW, float* dst, int64_t RS) {
  alignas(64) static const int32_t kIdx[6][16] = {
      {0, 4, 8, 12, 16, 20, 24}, {1, 5, 9, 13, 17, 21, 25}, {2, 6, 10, 14, 18, 22, 26},
      {3, 7, 11, 15, 19, 23, 27}, {4, 8, 12, 16, 20, 24, 28}, {5, 9, 13, 17, 21, 25, 29}};
  for (int64_t g = 0; g < TW; g += 7) {
    const V a = _mm512_loadu_ps(row + 4 * g), b = _mm512_loadu_ps(row + 4 * g + 16);
    const int64_t n = TW - g < 7 ? TW - g : 7;
    for (int j = 0; j < 6; ++j)
      vstoren(dst + j * RS + g, _mm512_permutex2var_ps(a, _mm512_load_si512(kIdx[j]), b), n);
  }
}
// One F(4×4) output row from its four column phases: yr[k] = Y_{k mod 4}[k div 4], k < n,
// Y_j = y + j·RS. Sixteen tiles (64 outputs) per 4 × 16 transpose.
inline void interleave4(const float* y, int64_t RS, int64_t n, float* yr) {
  for (int64_t k = 0; k < n; k += 64) {
    const int64_t t = k / 4;
    const V y0 = _mm512_loadu_ps(y + t), y1 = _mm512_loadu_ps(y + RS + t), y2 = _mm512_loadu_ps(y + 2 * RS + t),
            y3 = _mm512_loadu_ps(y + 3 * RS + t);
    const V t0 = _mm512_unpacklo_ps(y0, y1), t1 = _mm512_unpackhi_ps(y0, y1);
    const V t2 = _mm512_unpacklo_ps(y2, y3), t3 = _mm512_unpackhi_ps(y2, y3);
    // u_q: tiles q, q + 4, q + 8, q + 12 (one per 128-bit lane), each as y0 y1 y2 y3
    const V u0 = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const V u2 = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const V v0 = _mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(1, 0, 1, 0)), v1 = _mm512_shuffle_f32x4(u2, u3, _MM_SHUFFLE(1, 0, 1, 0));
    const V v2 = _mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(3, 2, 3, 2)), v3 = _mm512_shuffle_f32x4(u2, u3, _MM_SHUFFLE(3, 2, 3, 2));
    const V out[4] = {_mm512_shuffle_f32x4(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)),
                      _mm512_shuffle_f32x4(v2, v3, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(v2, v3, _MM_SHUFFLE(3, 1, 3, 1))};
    for (int q = 0; q < 4 && k + 16 * q < n; ++q) vstoren(yr + k + 16 * q, out[q], n - k - 16 * q);
  }
}

#include "kernels/simd/winograd_kernels.inl"
#include "kernels/simd/winograd4_kernels.inl"

}  // namespace
const Kernels* kernels(int m) { return m == 4 ? &kWino4Kernels : &kWinoKernels; }
}  // namespace fd::kernels::wino::avx512
