// AVX-512 attention (FlashAttention-2 style, blocked, online softmax): the AVX-512
// layer under the shared kernels in simd/attention_tile.inl and
// simd/attention_kernels.inl (the algorithm is described there). Masks are free
// here, so every column chunk goes through one masked tile instantiation.
//
// ODR: compiled with AVX-512 flags, so only intrinsics, plain loops and helpers
// with internal linkage; no std:: templates or inline library functions.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on _mm512_undefined_ps (false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <math.h>  // INFINITY

#include <cstddef>
#include <cstdint>

#include "kernels/attention_impl.h"

namespace fd::kernels::impl {
namespace {

// ---------------------------------------------------------------- ISA layer
constexpr int W = 16;     // floats per vector
constexpr int NVMAX = 4;  // column vectors per register tile
using V = __m512;
using M = __mmask16;   // lane predicate
using LM = __mmask16;  // lane mask of masked loads/stores

static inline V vset(float a) { return _mm512_set1_ps(a); }
static inline V vzero() { return _mm512_setzero_ps(); }
static inline V vload(const float* p) { return _mm512_loadu_ps(p); }
static inline V vloada(const float* p) { return _mm512_load_ps(p); }
static inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
static inline void vstorea(float* p, V v) { _mm512_store_ps(p, v); }
static inline V vbcast(const float* p) { return _mm512_set1_ps(*p); }
static inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
static inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V vdiv(V a, V b) { return _mm512_div_ps(a, b); }
static inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }  // a*b + c
static inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
static inline V vround(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline M vge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
static inline M vgt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline V vmul_if(M k, V a, V b) { return _mm512_mask_mul_ps(a, k, a, b); }
static inline V vadd_if(M k, V a, V b) { return _mm512_mask_add_ps(a, k, a, b); }

static inline LM tail_mask(int64_t n) {
  return n >= W ? static_cast<LM>(0xFFFF) : static_cast<LM>((1u << n) - 1u);
}
static inline V vloadm(const float* p, LM m) { return _mm512_maskz_loadu_ps(m, p); }
static inline void vstorem(float* p, LM m, V v) { _mm512_mask_storeu_ps(p, m, v); }
constexpr bool kPlainFullStores = false;  // masked stores are free: every row uses one
// Load of a C / cs vector in a tile (only the lanes of m when partial). A macro rather
// than a function: GCC then compiles the tile exactly as the hand-written intrinsics
// (as a function it schedules the tile's loads differently).
#define FD_ATTN_LOAD_ACC(p, m, partial) _mm512_maskz_loadu_ps((partial) ? (m) : static_cast<LM>(0xFFFF), p)

// exp2: vscalefps scales by 2^n for any n, and the zero-masking drops the lanes below -126.
static inline V exp2_arg(V x) { return x; }
static inline V exp2_scale(V p, V n, M live) { return _mm512_maskz_scalef_ps(live, p, n); }

// x = m·2^e with m in [1, 2), e = floor(log2 x) (also for denormal x).
static inline void mant_exp(V x, V& m, V& e) {
  m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
  e = _mm512_getexp_ps(x);
}

// In-register 16×16 transpose of r[0..15].
static inline void transpose(V r[16]) {
  V t[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {
    r[4 * k + 0] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
    r[4 * k + 1] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
    r[4 * k + 2] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
    r[4 * k + 3] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(r[k], r[k + 4], 0x88);
    t[k + 4] = _mm512_shuffle_f32x4(r[k], r[k + 4], 0xDD);
    t[k + 8] = _mm512_shuffle_f32x4(r[k + 8], r[k + 12], 0x88);
    t[k + 12] = _mm512_shuffle_f32x4(r[k + 8], r[k + 12], 0xDD);
  }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
  }
}

// Tile rows for NV column vectors (32 zmm registers).
template <int NV>
constexpr int rows_for() {
  return NV == 1 ? 12 : NV == 2 ? 12 : NV == 3 ? 8 : 6;
}

// ---------------------------------------------------------------- shared kernels
#include "kernels/simd/attention_tile.inl"
#undef FD_ATTN_LOAD_ACC

// C[rows][ncols] (ldc) (= | += | ·cs[r] +=) Σ_{t<T} A[r·ars + t·ats] · Y[t·ldy + col]: chunks of up to
// NVMAX column vectors; the last vector of the last chunk uses the tail mask (all lanes elsewhere).
template <bool ACC, bool CS>
static void gemm(int64_t rows, int64_t ncols, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y,
                 int64_t ldy, float* C, int64_t ldc, const float* cs) {
  const int64_t nvec = (ncols + W - 1) / W;
  for (int64_t c0 = 0; c0 < nvec; c0 += NVMAX) {
    const int nv = static_cast<int>(min64(NVMAX, nvec - c0));
    const LM lm = (c0 + nv == nvec) ? tail_mask(ncols - (nvec - 1) * W) : static_cast<LM>(0xFFFF);
    const float* Yc = Y + c0 * W;
    float* Cc = C + c0 * W;
    switch (nv) {
      case 1: gemm_nv<1, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs); break;
      case 2: gemm_nv<2, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs); break;
      case 3: gemm_nv<3, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs); break;
      default: gemm_nv<4, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, cs); break;
    }
  }
}

#include "kernels/simd/attention_kernels.inl"

}  // namespace

int64_t attention_fwd_tasks_avx512(const AttentionShape& s) { return fwd_tasks(s); }
size_t attention_fwd_scratch_floats_avx512(const AttentionShape& s) { return fwd_scratch_floats(s); }
void attention_fwd_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                          int64_t task_begin, int64_t task_end, float* scratch) {
  fwd_range(s, q, k, v, o, lse, task_begin, task_end, scratch);
}
size_t attention_bwd_scratch_floats_avx512(const AttentionShape& s) { return bwd_scratch_floats(s); }
void attention_bwd_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                          const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                          int64_t bh_end, float* scratch) {
  bwd_range(s, q, k, v, o, lse, go, gq, gk, gv, bh_begin, bh_end, scratch);
}

}  // namespace fd::kernels::impl
