// AVX-512 attention (FlashAttention-2 style, blocked, online softmax).
//
// Layout trick: every score block is held TRANSPOSED, keys × queries, with the
// queries along the vector lanes (S^T[j][i]). Then the softmax statistics of a
// query (running max m_i, running sum l_i) live in one lane of a vector, so the
// row max / row sum / rescale are plain vertical vector ops with no horizontal
// reductions, and every block product is the same small register-tiled kernel:
//     C[r][cols] (=, +=, or ·cs +=) Σ_t A(r, t) · Y[t][cols]
// (A broadcast with arbitrary strides, Y loaded as vectors along cols).
// The query block is transposed once (Q^T, scaled by scale·log2 e so the softmax
// uses exp2), and the output accumulator is kept as O^T (Dv × queries) and
// transposed back once at the end of the block.
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

constexpr int W = 16;      // floats per vector
constexpr int BQ = 64;     // queries per block (4 vectors of lanes)
constexpr int BK = 64;     // keys per block (32/64/128 measured within 1-2%)
constexpr int NVMAX = 4;   // column vectors per register tile
constexpr float kLog2e = 1.44269504088896340736f;
constexpr double kLn2 = 0.69314718055994530942;

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static inline __mmask16 tail_mask(int64_t n) {
  return n >= W ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// 2^x for x <= ~127. Lanes with x < -126 (including -inf) give exactly 0, so no
// denormals are produced. Degree-6 polynomial for 2^f on f in [-0.5, 0.5]
// (relative error ~2e-9 before rounding; ~1 ulp in float), scaled by 2^n with vscalefps.
static inline __m512 exp2v(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.f), _CMP_GE_OQ);
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.5353725757449865e-04f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3398868031799793e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6184359863400460e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5503323674201965e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022647738456726e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718246459960e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(live, p, n);
}

// One register tile: R rows × NV vectors of columns. The last column vector uses
// mask `lm` (partial when the column count is not a multiple of 16).
//   ACC=false: C = Σ_t A(r,t)·Y[t]          ACC=true: C = C (· cs if CS) + Σ_t ...
template <int R, int NV, bool ACC, bool CS>
static inline void tile(int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y, int64_t ldy, float* C,
                        int64_t ldc, __mmask16 lm, const float* cs) {
  __m512 acc[R][NV];
  if constexpr (ACC) {
    __m512 sc[NV];
    if constexpr (CS) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) sc[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? lm : 0xFFFF, cs + v * W);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = _mm512_maskz_loadu_ps(v == NV - 1 ? lm : 0xFFFF, C + r * ldc + v * W);
        if constexpr (CS) acc[r][v] = _mm512_mul_ps(acc[r][v], sc[v]);
      }
    }
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const float* a = A;
  const float* y = Y;
  for (int64_t t = 0; t < T; ++t, a += ats, y += ldy) {
    __m512 yv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      yv[v] = (v == NV - 1) ? _mm512_maskz_loadu_ps(lm, y + v * W) : _mm512_loadu_ps(y + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 b = _mm512_set1_ps(a[r * ars]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(b, yv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (v == NV - 1)
        _mm512_mask_storeu_ps(C + r * ldc + v * W, lm, acc[r][v]);
      else
        _mm512_storeu_ps(C + r * ldc + v * W, acc[r][v]);
    }
}

template <int NV>
constexpr int rows_for() {
  return NV == 1 ? 12 : NV == 2 ? 12 : NV == 3 ? 8 : 6;
}

template <int NV, bool ACC, bool CS, int K>
static inline void tail_rows(int64_t rem, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y,
                             int64_t ldy, float* C, int64_t ldc, __mmask16 lm, const float* cs) {
  if constexpr (K >= 1) {
    if (rem == K)
      tile<K, NV, ACC, CS>(T, A, ars, ats, Y, ldy, C, ldc, lm, cs);
    else
      tail_rows<NV, ACC, CS, K - 1>(rem, T, A, ars, ats, Y, ldy, C, ldc, lm, cs);
  }
}

template <int NV, bool ACC, bool CS>
static void gemm_nv(int64_t rows, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y, int64_t ldy,
                    float* C, int64_t ldc, __mmask16 lm, const float* cs) {
  constexpr int R = rows_for<NV>();
  int64_t r = 0;
  for (; r + R <= rows; r += R) tile<R, NV, ACC, CS>(T, A + r * ars, ars, ats, Y, ldy, C + r * ldc, ldc, lm, cs);
  if (r < rows) tail_rows<NV, ACC, CS, R - 1>(rows - r, T, A + r * ars, ars, ats, Y, ldy, C + r * ldc, ldc, lm, cs);
}

// C[rows][ncols] (ldc) (= | += | ·cs +=) Σ_{t<T} A[r·ars + t·ats] · Y[t·ldy + col].
template <bool ACC, bool CS>
static void gemm(int64_t rows, int64_t ncols, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y,
                 int64_t ldy, float* C, int64_t ldc, const float* cs) {
  const int64_t nvec = (ncols + W - 1) / W;
  for (int64_t c0 = 0; c0 < nvec; c0 += NVMAX) {
    const int nv = static_cast<int>(min64(NVMAX, nvec - c0));
    const __mmask16 lm = (c0 + nv == nvec) ? tail_mask(ncols - (nvec - 1) * W) : static_cast<__mmask16>(0xFFFF);
    const float* Yc = Y + c0 * W;
    float* Cc = C + c0 * W;
    const float* csc = CS ? cs + c0 * W : cs;
    switch (nv) {
      case 1: gemm_nv<1, ACC, CS>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc); break;
      case 2: gemm_nv<2, ACC, CS>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc); break;
      case 3: gemm_nv<3, ACC, CS>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc); break;
      default: gemm_nv<4, ACC, CS>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc); break;
    }
  }
}

// log2(x) for finite x > 0: x = m·2^e with m in [sqrt(1/2), sqrt(2)), then
// log2(m) = (2/ln 2)·atanh(z), z = (m-1)/(m+1), |z| < 0.172 (odd series to z^9,
// truncation error < 1e-9).
static inline __m512 log2v(__m512 x) {
  __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);  // [1, 2)
  __m512 e = _mm512_getexp_ps(x);                                           // floor(log2 x)
  const __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
  e = _mm512_mask_add_ps(e, big, e, _mm512_set1_ps(1.f));
  const __m512 z = _mm512_div_ps(_mm512_sub_ps(m, _mm512_set1_ps(1.f)), _mm512_add_ps(m, _mm512_set1_ps(1.f)));
  const __m512 z2 = _mm512_mul_ps(z, z);
  __m512 p = _mm512_set1_ps(1.f / 9.f);
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.f / 7.f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.f / 5.f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.f / 3.f));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.f));
  return _mm512_fmadd_ps(_mm512_mul_ps(p, z), _mm512_set1_ps(2.88539008f), e);  // 2/ln 2
}

// In-register 16×16 transpose of r[0..15].
static inline void transpose16(__m512 r[16]) {
  __m512 t[16];
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

// dst[c·LQ + i] = src[i·D + c]·mul for i < nq, c < D; lanes nq..LQ-1 become 0.
static void transpose_in(const float* src, int64_t nq, int64_t D, float mul, float* dst, int64_t LQ) {
  const __m512 vm = _mm512_set1_ps(mul);
  for (int64_t i0 = 0; i0 < LQ; i0 += W) {
    const int64_t ni = min64(W, nq - i0);  // >= 1: LQ is the rounded-up nq
    for (int64_t c0 = 0; c0 < D; c0 += W) {
      const int64_t nc = min64(W, D - c0);
      const __mmask16 cm = tail_mask(nc);
      __m512 r[16];
      for (int k = 0; k < 16; ++k)
        r[k] = k < ni ? _mm512_mul_ps(_mm512_maskz_loadu_ps(cm, src + (i0 + k) * D + c0), vm) : _mm512_setzero_ps();
      transpose16(r);
      for (int k = 0; k < nc; ++k) _mm512_storeu_ps(dst + (c0 + k) * LQ + i0, r[k]);
    }
  }
}

// dst[i·ldd + c] = src[c·LQ + i]·rowmul[i] for i < nq, c < C (rowmul may be null).
static void transpose_out(const float* src, int64_t C, int64_t LQ, const float* rowmul, int64_t nq, float* dst,
                          int64_t ldd) {
  for (int64_t i0 = 0; i0 < nq; i0 += W) {
    const int64_t ni = min64(W, nq - i0);
    const __m512 vm = rowmul ? _mm512_loadu_ps(rowmul + i0) : _mm512_set1_ps(1.f);
    for (int64_t c0 = 0; c0 < C; c0 += W) {
      const int64_t nc = min64(W, C - c0);
      const __mmask16 cm = tail_mask(nc);
      __m512 r[16];
      for (int k = 0; k < 16; ++k)
        r[k] = k < nc ? _mm512_mul_ps(_mm512_loadu_ps(src + (c0 + k) * LQ + i0), vm) : _mm512_setzero_ps();
      transpose16(r);
      for (int k = 0; k < ni; ++k) _mm512_mask_storeu_ps(dst + (i0 + k) * ldd + c0, cm, r[k]);
    }
  }
}

// One query block of one head.
static void fwd_block(const AttentionShape& s, const float* qh, const float* kh, const float* vh, float* oh,
                      float* lseh, int64_t i0, float* scratch) {
  const int64_t D = s.D, Dv = s.Dv, Nk = s.Nk;
  const int64_t nq = min64(BQ, s.Nq - i0);
  const int nv = static_cast<int>((nq + W - 1) / W);
  const int64_t LQ = nv * W;
  float* Qt = scratch;         // D × LQ
  float* Ot = Qt + D * BQ;     // Dv × LQ
  float* S = Ot + Dv * BQ;     // BK × LQ
  float* m = S + BK * BQ;      // running max (log2 domain)
  float* l = m + BQ;           // running sum
  float* alpha = l + BQ;       // per-block rescale factor

  transpose_in(qh + i0 * D, nq, D, s.scale * kLog2e, Qt, LQ);
  for (int v = 0; v < nv; ++v) {
    _mm512_store_ps(m + v * W, _mm512_set1_ps(-INFINITY));
    _mm512_store_ps(l + v * W, _mm512_setzero_ps());
  }

  for (int64_t j0 = 0; j0 < Nk; j0 += BK) {
    const int64_t nk = min64(BK, Nk - j0);
    // S^T = K_blk · Q^T   (nk × LQ)
    gemm<false, false>(nk, LQ, D, kh + j0 * D, D, 1, Qt, LQ, S, LQ, nullptr);
    // online softmax, one lane per query
    for (int v = 0; v < nv; ++v) {
      float* sv = S + v * W;
      __m512 mx = _mm512_load_ps(sv);
      for (int64_t j = 1; j < nk; ++j) mx = _mm512_max_ps(mx, _mm512_load_ps(sv + j * LQ));
      const __m512 mold = _mm512_load_ps(m + v * W);
      const __m512 mnew = _mm512_max_ps(mold, mx);
      const __m512 al = exp2v(_mm512_sub_ps(mold, mnew));
      __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
      int64_t j = 0;
      for (; j + 2 <= nk; j += 2) {
        const __m512 p0 = exp2v(_mm512_sub_ps(_mm512_load_ps(sv + j * LQ), mnew));
        const __m512 p1 = exp2v(_mm512_sub_ps(_mm512_load_ps(sv + (j + 1) * LQ), mnew));
        _mm512_store_ps(sv + j * LQ, p0);
        _mm512_store_ps(sv + (j + 1) * LQ, p1);
        sum0 = _mm512_add_ps(sum0, p0);
        sum1 = _mm512_add_ps(sum1, p1);
      }
      if (j < nk) {
        const __m512 p0 = exp2v(_mm512_sub_ps(_mm512_load_ps(sv + j * LQ), mnew));
        _mm512_store_ps(sv + j * LQ, p0);
        sum0 = _mm512_add_ps(sum0, p0);
      }
      _mm512_store_ps(l + v * W, _mm512_fmadd_ps(_mm512_load_ps(l + v * W), al, _mm512_add_ps(sum0, sum1)));
      _mm512_store_ps(m + v * W, mnew);
      _mm512_store_ps(alpha + v * W, al);
    }
    // O^T = alpha ∘ O^T + V_blk^T · P^T   (Dv × LQ)
    if (j0 == 0)
      gemm<false, false>(Dv, LQ, nk, vh + j0 * Dv, 1, Dv, S, LQ, Ot, LQ, nullptr);
    else
      gemm<true, true>(Dv, LQ, nk, vh + j0 * Dv, 1, Dv, S, LQ, Ot, LQ, alpha);
  }

  const __m512 ln2 = _mm512_set1_ps(static_cast<float>(kLn2));
  for (int v = 0; v < nv; ++v) {
    const __m512 lv = _mm512_load_ps(l + v * W);
    const __m512 lse2 = _mm512_add_ps(_mm512_load_ps(m + v * W), log2v(lv));
    _mm512_mask_storeu_ps(lseh + i0 + v * W, tail_mask(nq - v * W), _mm512_mul_ps(lse2, ln2));
    _mm512_store_ps(alpha + v * W, _mm512_div_ps(_mm512_set1_ps(1.f), lv));
  }
  transpose_out(Ot, Dv, LQ, alpha, nq, oh + i0 * Dv, Dv);
}

// One head of the backward pass.
static void bwd_head(const AttentionShape& s, const float* qh, const float* kh, const float* vh, const float* oh,
                     const float* lseh, const float* goh, float* gqh, float* gkh, float* gvh, float* scratch) {
  const int64_t D = s.D, Dv = s.Dv, Nk = s.Nk, Nq = s.Nq;
  float* Qt = scratch;          // D × LQ   (scaled by scale·log2 e)
  float* dOt = Qt + D * BQ;     // Dv × LQ
  float* dQt = dOt + Dv * BQ;   // D × LQ
  float* S = dQt + D * BQ;      // BK × LQ: scores, then P
  float* dP = S + BK * BQ;      // BK × LQ: dP, then scale·dS
  float* lse2 = dP + BK * BQ;   // lse·log2 e
  float* Di = lse2 + BQ;        // rowsum(dO ∘ O)
  const __m512 vscale = _mm512_set1_ps(s.scale);

  for (int64_t x = 0; x < Nk * D; ++x) gkh[x] = 0.f;
  for (int64_t x = 0; x < Nk * Dv; ++x) gvh[x] = 0.f;

  for (int64_t i0 = 0; i0 < Nq; i0 += BQ) {
    const int64_t nq = min64(BQ, Nq - i0);
    const int nv = static_cast<int>((nq + W - 1) / W);
    const int64_t LQ = nv * W;
    transpose_in(qh + i0 * D, nq, D, s.scale * kLog2e, Qt, LQ);
    transpose_in(goh + i0 * Dv, nq, Dv, 1.f, dOt, LQ);
    for (int64_t i = 0; i < LQ; ++i) {
      if (i < nq) {
        lse2[i] = lseh[i0 + i] * kLog2e;
        const float* gr = goh + (i0 + i) * Dv;
        const float* orow = oh + (i0 + i) * Dv;
        float acc = 0.f;
        for (int64_t c = 0; c < Dv; ++c) acc += gr[c] * orow[c];
        Di[i] = acc;
      } else {
        lse2[i] = INFINITY;  // padded lanes: P = 0
        Di[i] = 0.f;
      }
    }
    for (int64_t j0 = 0; j0 < Nk; j0 += BK) {
      const int64_t nk = min64(BK, Nk - j0);
      gemm<false, false>(nk, LQ, D, kh + j0 * D, D, 1, Qt, LQ, S, LQ, nullptr);      // S^T
      gemm<false, false>(nk, LQ, Dv, vh + j0 * Dv, Dv, 1, dOt, LQ, dP, LQ, nullptr);  // dP^T = V · dO^T
      for (int v = 0; v < nv; ++v) {
        const __m512 l2 = _mm512_load_ps(lse2 + v * W);
        const __m512 di = _mm512_load_ps(Di + v * W);
        for (int64_t j = 0; j < nk; ++j) {
          float* sp = S + j * LQ + v * W;
          float* dp = dP + j * LQ + v * W;
          const __m512 p = exp2v(_mm512_sub_ps(_mm512_load_ps(sp), l2));
          const __m512 ds = _mm512_mul_ps(_mm512_mul_ps(p, vscale), _mm512_sub_ps(_mm512_load_ps(dp), di));
          _mm512_store_ps(sp, p);
          _mm512_store_ps(dp, ds);
        }
      }
      // dV_blk += P^T-rows · dO_blk ; dK_blk += dS · Q_blk   (reduction over the nq queries)
      gemm<true, false>(nk, Dv, nq, S, LQ, 1, goh + i0 * Dv, Dv, gvh + j0 * Dv, Dv, nullptr);
      gemm<true, false>(nk, D, nq, dP, LQ, 1, qh + i0 * D, D, gkh + j0 * D, D, nullptr);
      // dQ^T += K_blk^T · dS^T
      if (j0 == 0)
        gemm<false, false>(D, LQ, nk, kh + j0 * D, 1, D, dP, LQ, dQt, LQ, nullptr);
      else
        gemm<true, false>(D, LQ, nk, kh + j0 * D, 1, D, dP, LQ, dQt, LQ, nullptr);
    }
    transpose_out(dQt, D, LQ, nullptr, nq, gqh + i0 * D, D);
  }
}

}  // namespace

int64_t attention_fwd_tasks_avx512(const AttentionShape& s) { return s.B * s.H * ((s.Nq + BQ - 1) / BQ); }

size_t attention_fwd_scratch_floats_avx512(const AttentionShape& s) {
  return static_cast<size_t>((s.D + s.Dv + BK + 3) * BQ + 64);
}

void attention_fwd_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                          int64_t task_begin, int64_t task_end, float* scratch) {
  const int64_t nqb = (s.Nq + BQ - 1) / BQ;
  for (int64_t t = task_begin; t < task_end; ++t) {
    const int64_t bh = t / nqb, qb = t % nqb;
    fwd_block(s, q + bh * s.Nq * s.D, k + bh * s.Nk * s.D, v + bh * s.Nk * s.Dv, o + bh * s.Nq * s.Dv, lse + bh * s.Nq,
              qb * BQ, scratch);
  }
}

size_t attention_bwd_scratch_floats_avx512(const AttentionShape& s) {
  return static_cast<size_t>((2 * s.D + s.Dv + 2 * BK + 2) * BQ + 64);
}

void attention_bwd_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                          const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                          int64_t bh_end, float* scratch) {
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const int64_t qo = bh * s.Nq, ko = bh * s.Nk;
    bwd_head(s, q + qo * s.D, k + ko * s.D, v + ko * s.Dv, o + qo * s.Dv, lse + qo, go + qo * s.Dv, gq + qo * s.D,
             gk + ko * s.D, gv + ko * s.Dv, scratch);
  }
}

}  // namespace fd::kernels::impl
