// The AVX-512 layer of the shared SIMD text (simd/vector_math.inl, simd/vector_kernels.inl): the vector
// types and primitives those files are written against. Textually included, inside an anonymous namespace,
// by files compiled with the AVX-512 flags (vector_avx512.cc, and gemm_avx512.cc for its in-register
// activations); needs <immintrin.h> and <cstdint>.
constexpr int64_t W = 16;
using V = __m512;
using VI = __m512i;
using VD = __m512d;
using M = __mmask16;

inline V vset(float a) { return _mm512_set1_ps(a); }
inline V vzero() { return _mm512_setzero_ps(); }
inline V vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
inline M tailmask(int64_t n) { return n >= 16 ? static_cast<M>(0xFFFF) : static_cast<M>((1u << n) - 1u); }
inline V vloadn(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tailmask(n), p); }
inline void vstoren(float* p, V v, int64_t n) { _mm512_mask_storeu_ps(p, tailmask(n), v); }
inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V vdiv(V a, V b) { return _mm512_div_ps(a, b); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }   // a*b + c
inline V vfnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); } // c - a*b
inline V vfms(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }   // a*b - c
inline V vsqrt(V a) { return _mm512_sqrt_ps(a); }
inline V vmaxr(V a, V b) { return _mm512_max_ps(a, b); }  // a > b ? a : b (b when unordered)
inline V vminr(V a, V b) { return _mm512_min_ps(a, b); }  // a < b ? a : b (b when unordered)
inline V vand(V a, V b) { return _mm512_and_ps(a, b); }
inline V vor(V a, V b) { return _mm512_or_ps(a, b); }
inline V vxor(V a, V b) { return _mm512_xor_ps(a, b); }
inline V vabs(V a) { return _mm512_andnot_ps(vset(-0.f), a); }
inline V vneg(V a) { return vxor(a, vset(-0.f)); }
inline M lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline M le(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
inline M gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline M ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
inline M eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
inline M isnan(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
inline M mand(M a, M b) { return static_cast<M>(a & b); }
inline M mor(M a, M b) { return static_cast<M>(a | b); }
inline M mnot(M a) { return static_cast<M>(~a); }
inline int mcount(M m) { return __builtin_popcount(static_cast<unsigned>(m)); }
inline V sel(M m, V t, V f) { return _mm512_mask_blend_ps(m, f, t); }
inline V vround(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline VI vcvti(V a) { return _mm512_cvttps_epi32(a); }
inline V vcvtf(VI a) { return _mm512_cvtepi32_ps(a); }
inline VI iset(int a) { return _mm512_set1_epi32(a); }
inline VI iadd(VI a, VI b) { return _mm512_add_epi32(a, b); }
inline VI isub(VI a, VI b) { return _mm512_sub_epi32(a, b); }
inline VI isra1(VI a) { return _mm512_srai_epi32(a, 1); }
inline VI isrl23(VI a) { return _mm512_srli_epi32(a, 23); }
inline VI isll23(VI a) { return _mm512_slli_epi32(a, 23); }
inline VI iand(VI a, VI b) { return _mm512_and_si512(a, b); }
inline VI ior(VI a, VI b) { return _mm512_or_si512(a, b); }
inline V asf(VI a) { return _mm512_castsi512_ps(a); }
inline VI asi(V a) { return _mm512_castps_si512(a); }
inline float hsum(V a) { return _mm512_reduce_add_ps(a); }
inline float lane0(V a) { return _mm512_cvtss_f32(a); }
inline VD dzero() { return _mm512_setzero_pd(); }
inline VD dset(double a) { return _mm512_set1_pd(a); }
inline VD dadd(VD a, VD b) { return _mm512_add_pd(a, b); }
inline VD dfma(VD a, VD b, VD c) { return _mm512_fmadd_pd(a, b, c); }
inline double dhsum(VD a) { return _mm512_reduce_add_pd(a); }
inline VD tod_lo(V a) { return _mm512_cvtps_pd(_mm512_castps512_ps256(a)); }
inline VD tod_hi(V a) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))); }
inline void dstore(double* p, VD a) { _mm512_storeu_pd(p, a); }
inline VD dload(const double* p) { return _mm512_loadu_pd(p); }
// y·2^n for integral n in [-150, 128] (exact scaling, denormal and overflow results correct).
inline V vldexp(V y, V n) { return _mm512_scalef_ps(y, n); }
inline V vrcp(V a) { return _mm512_rcp14_ps(a); }
