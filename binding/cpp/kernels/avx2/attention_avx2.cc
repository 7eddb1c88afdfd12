// AVX2+FMA attention (FlashAttention-2 style, blocked, online softmax): the AVX2
// layer under the shared kernels in simd/attention_tile.inl and
// simd/attention_kernels.inl (the algorithm is described there).
// 16 ymm registers: tiles are up to 6 rows × 2 vectors (12 accumulators); masked
// loads/stores cost extra here, so only a partial last column chunk uses them.
//
// ODR: compiled with AVX2 flags, so only intrinsics, plain loops and helpers
// with internal linkage; no std:: templates or inline library functions.
#include <immintrin.h>
#include <math.h>  // INFINITY

#include <cstddef>
#include <cstdint>

#include "kernels/attention_impl.h"

namespace fd::kernels::impl {
namespace {

// ---------------------------------------------------------------- ISA layer
constexpr int W = 8;      // floats per vector
constexpr int NVMAX = 2;  // column vectors per register tile
using V = __m256;
using M = __m256;     // lane predicate (all-ones / all-zeros lanes)
using LM = __m256i;   // lane mask of maskload/maskstore

static inline V vset(float a) { return _mm256_set1_ps(a); }
static inline V vzero() { return _mm256_setzero_ps(); }
static inline V vload(const float* p) { return _mm256_loadu_ps(p); }
static inline V vloada(const float* p) { return _mm256_load_ps(p); }
static inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
static inline void vstorea(float* p, V v) { _mm256_store_ps(p, v); }
static inline V vbcast(const float* p) { return _mm256_broadcast_ss(p); }
static inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
static inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
static inline V vdiv(V a, V b) { return _mm256_div_ps(a, b); }
static inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }  // a*b + c
static inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
static inline V vround(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline M vge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
static inline M vgt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline V vmul_if(M k, V a, V b) { return _mm256_blendv_ps(a, _mm256_mul_ps(a, b), k); }
static inline V vadd_if(M k, V a, V b) { return _mm256_add_ps(a, _mm256_and_ps(k, b)); }

// Lane mask for maskload/maskstore: first n lanes (1..8; all for n > 8) active.
static inline LM tail_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}
static inline V vloadm(const float* p, LM m) { return _mm256_maskload_ps(p, m); }
static inline void vstorem(float* p, LM m, V v) { _mm256_maskstore_ps(p, m, v); }
constexpr bool kPlainFullStores = true;  // maskstore is slow: full rows use a plain store
// Load of a C / cs vector in a tile (only the lanes of m when partial). A macro rather
// than a function: GCC then compiles the tile exactly as the hand-written intrinsics
// (as a function it schedules the tile's loads differently).
#define FD_ATTN_LOAD_ACC(p, m, partial) ((partial) ? _mm256_maskload_ps(p, m) : _mm256_loadu_ps(p))

// exp2: the argument is clamped to -126 (which also maps -inf / NaN to finite), 2^n
// is built in the exponent field, and the lanes below -126 are zeroed.
static inline V exp2_arg(V x) { return _mm256_max_ps(x, _mm256_set1_ps(-126.f)); }
static inline V exp2_scale(V p, V n, M live) {
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}

// x = m·2^e with m in [1, 2), e = floor(log2 x), for finite normal x > 0.
static inline void mant_exp(V x, V& m, V& e) {
  const __m256i xi = _mm256_castps_si256(x);
  e = _mm256_cvtepi32_ps(
      _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(0xff)), _mm256_set1_epi32(127)));
  m = _mm256_castsi256_ps(
      _mm256_or_si256(_mm256_and_si256(xi, _mm256_set1_epi32(0x7fffff)), _mm256_set1_epi32(0x3f800000)));
}

// In-register 8×8 transpose of r[0..7].
static inline void transpose(V r[8]) {
  V t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 2; ++k) {
    u[4 * k + 0] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
    u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
    u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
    u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
  }
}

// Tile rows for NV column vectors (16 ymm registers).
template <int NV>
constexpr int rows_for() {
  return NV == 1 ? 12 : 6;
}

// ---------------------------------------------------------------- shared kernels
#include "kernels/simd/attention_tile.inl"
#undef FD_ATTN_LOAD_ACC

// C[rows][ncols] (ldc) (= | += | ·cs[r] +=) Σ_{t<T} A[r·ars + t·ats] · Y[t·ldy + col]: chunks of up to
// NVMAX column vectors; only a partial last vector gets the masked (MASK=true) instantiation.
template <bool ACC, bool CS>
static void gemm(int64_t rows, int64_t ncols, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y,
                 int64_t ldy, float* C, int64_t ldc, const float* cs) {
  const int64_t nvec = (ncols + W - 1) / W;
  const int64_t last = ncols - (nvec - 1) * W;
  const LM lm = tail_mask(last);
  for (int64_t c0 = 0; c0 < nvec; c0 += NVMAX) {
    const int nv = static_cast<int>(min64(NVMAX, nvec - c0));
    const bool mask = (c0 + nv == nvec) && last < W;
    const float* Yc = Y + c0 * W;
    float* Cc = C + c0 * W;
    if (nv == 1) {
      if (mask)
        gemm_nv<1, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs);
      else
        gemm_nv<1, ACC, CS, false>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs);
    } else {
      if (mask)
        gemm_nv<2, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs);
      else
        gemm_nv<2, ACC, CS, false>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs);
    }
  }
}

#include "kernels/simd/attention_kernels.inl"

}  // namespace

int64_t attention_fwd_tasks_avx2(const AttentionShape& s) { return fwd_tasks(s); }
size_t attention_fwd_scratch_floats_avx2(const AttentionShape& s) { return fwd_scratch_floats(s); }
void attention_fwd_avx2(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                        int64_t task_begin, int64_t task_end, float* scratch) {
  fwd_range(s, q, k, v, o, lse, task_begin, task_end, scratch);
}
size_t attention_bwd_scratch_floats_avx2(const AttentionShape& s) { return bwd_scratch_floats(s); }
void attention_bwd_avx2(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                        int64_t bh_end, float* scratch) {
  bwd_range(s, q, k, v, o, lse, go, gq, gk, gv, bh_begin, bh_end, scratch);
}

}  // namespace fd::kernels::impl
