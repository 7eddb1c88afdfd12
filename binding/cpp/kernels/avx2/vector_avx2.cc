// AVX2 + FMA vector kernels. Compiled with -mavx2 -mfma -mf16c: only intrinsics,
// static helpers and plain loops here (no shared templates, no <cmath>), exported
// through the table in kernels/vector_impl.h. Tails go through a padded local
// buffer and the same vector code, so every element gets the same approximation.
// This file is the AVX2 wrapper layer; the kernels themselves are the shared text
// in simd/vector_kernels.inl, included below.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/vector_impl.h"

namespace fd::kernels::avx2 {
namespace {

// ---------------------------------------------------------------- ISA layer
constexpr int64_t W = 8;
using V = __m256;
using VI = __m256i;
using VD = __m256d;
using M = __m256;

inline V vset(float a) { return _mm256_set1_ps(a); }
inline V vzero() { return _mm256_setzero_ps(); }
inline V vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
inline M tailmask(int64_t n) {
  return _mm256_cmp_ps(_mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f), vset(static_cast<float>(n)), _CMP_LT_OQ);
}
inline V vloadn(const float* p, int64_t n) {
  float buf[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(float));
  return _mm256_loadu_ps(buf);
}
inline void vstoren(float* p, V v, int64_t n) {
  float buf[8];
  _mm256_storeu_ps(buf, v);
  std::memcpy(p, buf, static_cast<size_t>(n) * sizeof(float));
}
inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V vdiv(V a, V b) { return _mm256_div_ps(a, b); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }   // a*b + c
inline V vfnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); } // c - a*b
inline V vfms(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }   // a*b - c
inline V vsqrt(V a) { return _mm256_sqrt_ps(a); }
inline V vmaxr(V a, V b) { return _mm256_max_ps(a, b); }  // a > b ? a : b (b when unordered)
inline V vminr(V a, V b) { return _mm256_min_ps(a, b); }  // a < b ? a : b (b when unordered)
inline V vand(V a, V b) { return _mm256_and_ps(a, b); }
inline V vor(V a, V b) { return _mm256_or_ps(a, b); }
inline V vxor(V a, V b) { return _mm256_xor_ps(a, b); }
inline V vabs(V a) { return _mm256_andnot_ps(vset(-0.f), a); }
inline V vneg(V a) { return vxor(a, vset(-0.f)); }
inline M lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
inline M le(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
inline M gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
inline M ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
inline M eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
inline M isnan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
inline M mand(M a, M b) { return _mm256_and_ps(a, b); }
inline M mor(M a, M b) { return _mm256_or_ps(a, b); }
inline M mnot(M a) { return _mm256_xor_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(-1))); }
inline int mcount(M m) { return __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(m))); }
inline V sel(M m, V t, V f) { return _mm256_blendv_ps(f, t, m); }
inline V vround(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline VI vcvti(V a) { return _mm256_cvttps_epi32(a); }
inline V vcvtf(VI a) { return _mm256_cvtepi32_ps(a); }
inline VI iset(int a) { return _mm256_set1_epi32(a); }
inline VI iadd(VI a, VI b) { return _mm256_add_epi32(a, b); }
inline VI isub(VI a, VI b) { return _mm256_sub_epi32(a, b); }
inline VI isra1(VI a) { return _mm256_srai_epi32(a, 1); }
inline VI isrl23(VI a) { return _mm256_srli_epi32(a, 23); }
inline VI isll23(VI a) { return _mm256_slli_epi32(a, 23); }
inline VI iand(VI a, VI b) { return _mm256_and_si256(a, b); }
inline VI ior(VI a, VI b) { return _mm256_or_si256(a, b); }
inline V asf(VI a) { return _mm256_castsi256_ps(a); }
inline VI asi(V a) { return _mm256_castps_si256(a); }
inline float hsum(V a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float lane0(V a) { return _mm256_cvtss_f32(a); }
inline VD dzero() { return _mm256_setzero_pd(); }
inline VD dset(double a) { return _mm256_set1_pd(a); }
inline VD dadd(VD a, VD b) { return _mm256_add_pd(a, b); }
inline VD dfma(VD a, VD b, VD c) { return _mm256_fmadd_pd(a, b, c); }
inline double dhsum(VD a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}
inline VD tod_lo(V a) { return _mm256_cvtps_pd(_mm256_castps256_ps128(a)); }
inline VD tod_hi(V a) { return _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)); }
inline void dstore(double* p, VD a) { _mm256_storeu_pd(p, a); }
inline VD dload(const double* p) { return _mm256_loadu_pd(p); }
// y·2^n for integral n in [-150, 128], applied in two halves so that denormal and
// overflowing results come out right.
inline V vldexp(V y, V fn) {
  const VI n = vcvti(fn);
  const VI n1 = isra1(n);
  const VI n2 = isub(n, n1);
  const V s1 = asf(isll23(iadd(n1, iset(127))));
  const V s2 = asf(isll23(iadd(n2, iset(127))));
  return vmul(vmul(y, s1), s2);
}
inline V vrcp(V a) { return _mm256_rcp_ps(a); }

// ---------------------------------------------------------------- kernels (shared with AVX-512)
#include "kernels/simd/vector_kernels.inl"

}  // namespace

const VectorKernels* vector_table() { return &kVectorTable; }

}  // namespace fd::kernels::avx2
