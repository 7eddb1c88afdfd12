// AVX2+FMA attention (FlashAttention-2 style, blocked, online softmax). Same
// algorithm as kernels/avx512/attention_avx512.cc (see the comment there):
// score blocks are held transposed (keys × queries) with queries along the
// vector lanes, so softmax statistics are per-lane and need no horizontal
// reductions; all block products use one register-tiled kernel
//     C[r][cols] (=, +=, or ·cs +=) Σ_t A(r, t) · Y[t][cols].
// 16 ymm registers: tiles are up to 6 rows × 2 vectors (12 accumulators).
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

constexpr int W = 8;       // floats per vector
constexpr int BQ = 64;     // queries per block (8 vectors of lanes)
constexpr int BK = 64;     // keys per block
constexpr int NVMAX = 2;   // column vectors per register tile
constexpr float kLog2e = 1.44269504088896340736f;
constexpr double kLn2 = 0.69314718055994530942;

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Lane mask for maskload/maskstore: first n lanes (1..8) active.
static inline __m256i tail_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

// 2^x for x <= ~127. Lanes with x < -126 (including -inf) give exactly 0, so no
// denormals are produced. Degree-6 polynomial for 2^f on f in [-0.5, 0.5]
// (relative error ~2e-9 before rounding; ~1 ulp in float), times 2^n built in the exponent field.
static inline __m256 exp2v(__m256 x) {
  const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-126.f), _CMP_GE_OQ);
  const __m256 xc = _mm256_max_ps(x, _mm256_set1_ps(-126.f));  // also maps -inf / NaN to finite
  const __m256 n = _mm256_round_ps(xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(xc, n);
  __m256 p = _mm256_set1_ps(1.5353725757449865e-04f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3398868031799793e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6184359863400460e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5503323674201965e-02f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022647738456726e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718246459960e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}

// One register tile: R rows × NV vectors of columns; with MASK the last column
// vector is partial (lanes selected by lm).
//   ACC=false: C = Σ_t A(r,t)·Y[t]          ACC=true: C = C (· cs if CS) + Σ_t ...
template <int R, int NV, bool ACC, bool CS, bool MASK>
static inline void tile(int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y, int64_t ldy, float* C,
                        int64_t ldc, __m256i lm, const float* cs) {
  __m256 acc[R][NV];
  if constexpr (ACC) {
    __m256 sc[NV];
    if constexpr (CS) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        sc[v] = (MASK && v == NV - 1) ? _mm256_maskload_ps(cs + v * W, lm) : _mm256_loadu_ps(cs + v * W);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = (MASK && v == NV - 1) ? _mm256_maskload_ps(C + r * ldc + v * W, lm)
                                          : _mm256_loadu_ps(C + r * ldc + v * W);
        if constexpr (CS) acc[r][v] = _mm256_mul_ps(acc[r][v], sc[v]);
      }
    }
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  }
  const float* a = A;
  const float* y = Y;
  for (int64_t t = 0; t < T; ++t, a += ats, y += ldy) {
    __m256 yv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      yv[v] = (MASK && v == NV - 1) ? _mm256_maskload_ps(y + v * W, lm) : _mm256_loadu_ps(y + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 b = _mm256_broadcast_ss(a + r * ars);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(b, yv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (MASK && v == NV - 1)
        _mm256_maskstore_ps(C + r * ldc + v * W, lm, acc[r][v]);
      else
        _mm256_storeu_ps(C + r * ldc + v * W, acc[r][v]);
    }
}

template <int NV>
constexpr int rows_for() {
  return NV == 1 ? 12 : 6;
}

template <int NV, bool ACC, bool CS, bool MASK, int K>
static inline void tail_rows(int64_t rem, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y,
                             int64_t ldy, float* C, int64_t ldc, __m256i lm, const float* cs) {
  if constexpr (K >= 1) {
    if (rem == K)
      tile<K, NV, ACC, CS, MASK>(T, A, ars, ats, Y, ldy, C, ldc, lm, cs);
    else
      tail_rows<NV, ACC, CS, MASK, K - 1>(rem, T, A, ars, ats, Y, ldy, C, ldc, lm, cs);
  }
}

template <int NV, bool ACC, bool CS, bool MASK>
static void gemm_nv(int64_t rows, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y, int64_t ldy,
                    float* C, int64_t ldc, __m256i lm, const float* cs) {
  constexpr int R = rows_for<NV>();
  int64_t r = 0;
  for (; r + R <= rows; r += R) tile<R, NV, ACC, CS, MASK>(T, A + r * ars, ars, ats, Y, ldy, C + r * ldc, ldc, lm, cs);
  if (r < rows)
    tail_rows<NV, ACC, CS, MASK, R - 1>(rows - r, T, A + r * ars, ars, ats, Y, ldy, C + r * ldc, ldc, lm, cs);
}

// C[rows][ncols] (ldc) (= | += | ·cs +=) Σ_{t<T} A[r·ars + t·ats] · Y[t·ldy + col].
template <bool ACC, bool CS>
static void gemm(int64_t rows, int64_t ncols, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y,
                 int64_t ldy, float* C, int64_t ldc, const float* cs) {
  const int64_t nvec = (ncols + W - 1) / W;
  const int64_t last = ncols - (nvec - 1) * W;
  const __m256i lm = tail_mask(last);
  for (int64_t c0 = 0; c0 < nvec; c0 += NVMAX) {
    const int nv = static_cast<int>(min64(NVMAX, nvec - c0));
    const bool mask = (c0 + nv == nvec) && last < W;
    const float* Yc = Y + c0 * W;
    float* Cc = C + c0 * W;
    const float* csc = CS ? cs + c0 * W : cs;
    if (nv == 1) {
      if (mask)
        gemm_nv<1, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc);
      else
        gemm_nv<1, ACC, CS, false>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc);
    } else {
      if (mask)
        gemm_nv<2, ACC, CS, true>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc);
      else
        gemm_nv<2, ACC, CS, false>(rows, T, A, ars, ats, Yc, ldy, Cc, ldc, lm, csc);
    }
  }
}

// log2(x) for finite normal x > 0: x = m·2^e with m in [sqrt(1/2), sqrt(2)), then
// log2(m) = (2/ln 2)·atanh(z), z = (m-1)/(m+1), |z| < 0.172 (odd series to z^9).
static inline __m256 log2v(__m256 x) {
  const __m256i xi = _mm256_castps_si256(x);
  __m256 e = _mm256_cvtepi32_ps(
      _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(0xff)), _mm256_set1_epi32(127)));
  __m256 m = _mm256_castsi256_ps(
      _mm256_or_si256(_mm256_and_si256(xi, _mm256_set1_epi32(0x7fffff)), _mm256_set1_epi32(0x3f800000)));  // [1, 2)
  const __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
  e = _mm256_add_ps(e, _mm256_and_ps(big, _mm256_set1_ps(1.f)));
  const __m256 z = _mm256_div_ps(_mm256_sub_ps(m, _mm256_set1_ps(1.f)), _mm256_add_ps(m, _mm256_set1_ps(1.f)));
  const __m256 z2 = _mm256_mul_ps(z, z);
  __m256 p = _mm256_set1_ps(1.f / 9.f);
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.f / 7.f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.f / 5.f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.f / 3.f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.f));
  return _mm256_fmadd_ps(_mm256_mul_ps(p, z), _mm256_set1_ps(2.88539008f), e);  // 2/ln 2
}

// In-register 8×8 transpose of r[0..7].
static inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
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

// dst[c·LQ + i] = src[i·D + c]·mul for i < nq, c < D; lanes nq..LQ-1 become 0.
static void transpose_in(const float* src, int64_t nq, int64_t D, float mul, float* dst, int64_t LQ) {
  const __m256 vm = _mm256_set1_ps(mul);
  for (int64_t i0 = 0; i0 < LQ; i0 += W) {
    const int64_t ni = min64(W, nq - i0);  // >= 1: LQ is the rounded-up nq
    for (int64_t c0 = 0; c0 < D; c0 += W) {
      const int64_t nc = min64(W, D - c0);
      const __m256i cm = tail_mask(nc);
      __m256 r[8];
      for (int k = 0; k < 8; ++k)
        r[k] = k < ni ? _mm256_mul_ps(_mm256_maskload_ps(src + (i0 + k) * D + c0, cm), vm) : _mm256_setzero_ps();
      transpose8(r);
      for (int k = 0; k < nc; ++k) _mm256_storeu_ps(dst + (c0 + k) * LQ + i0, r[k]);
    }
  }
}

// dst[i·ldd + c] = src[c·LQ + i]·rowmul[i] for i < nq, c < C (rowmul may be null).
static void transpose_out(const float* src, int64_t C, int64_t LQ, const float* rowmul, int64_t nq, float* dst,
                          int64_t ldd) {
  for (int64_t i0 = 0; i0 < nq; i0 += W) {
    const int64_t ni = min64(W, nq - i0);
    const __m256 vm = rowmul ? _mm256_loadu_ps(rowmul + i0) : _mm256_set1_ps(1.f);
    for (int64_t c0 = 0; c0 < C; c0 += W) {
      const int64_t nc = min64(W, C - c0);
      const __m256i cm = tail_mask(nc);
      __m256 r[8];
      for (int k = 0; k < 8; ++k)
        r[k] = k < nc ? _mm256_mul_ps(_mm256_loadu_ps(src + (c0 + k) * LQ + i0), vm) : _mm256_setzero_ps();
      transpose8(r);
      for (int k = 0; k < ni; ++k) {
        if (nc == W)
          _mm256_storeu_ps(dst + (i0 + k) * ldd + c0, r[k]);
        else
          _mm256_maskstore_ps(dst + (i0 + k) * ldd + c0, cm, r[k]);
      }
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
    _mm256_store_ps(m + v * W, _mm256_set1_ps(-INFINITY));
    _mm256_store_ps(l + v * W, _mm256_setzero_ps());
  }

  for (int64_t j0 = 0; j0 < Nk; j0 += BK) {
    const int64_t nk = min64(BK, Nk - j0);
    // S^T = K_blk · Q^T   (nk × LQ)
    gemm<false, false>(nk, LQ, D, kh + j0 * D, D, 1, Qt, LQ, S, LQ, nullptr);
    // online softmax, one lane per query
    for (int v = 0; v < nv; ++v) {
      float* sv = S + v * W;
      __m256 mx = _mm256_load_ps(sv);
      for (int64_t j = 1; j < nk; ++j) mx = _mm256_max_ps(mx, _mm256_load_ps(sv + j * LQ));
      const __m256 mold = _mm256_load_ps(m + v * W);
      const __m256 mnew = _mm256_max_ps(mold, mx);
      const __m256 al = exp2v(_mm256_sub_ps(mold, mnew));
      __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
      int64_t j = 0;
      for (; j + 2 <= nk; j += 2) {
        const __m256 p0 = exp2v(_mm256_sub_ps(_mm256_load_ps(sv + j * LQ), mnew));
        const __m256 p1 = exp2v(_mm256_sub_ps(_mm256_load_ps(sv + (j + 1) * LQ), mnew));
        _mm256_store_ps(sv + j * LQ, p0);
        _mm256_store_ps(sv + (j + 1) * LQ, p1);
        sum0 = _mm256_add_ps(sum0, p0);
        sum1 = _mm256_add_ps(sum1, p1);
      }
      if (j < nk) {
        const __m256 p0 = exp2v(_mm256_sub_ps(_mm256_load_ps(sv + j * LQ), mnew));
        _mm256_store_ps(sv + j * LQ, p0);
        sum0 = _mm256_add_ps(sum0, p0);
      }
      _mm256_store_ps(l + v * W, _mm256_fmadd_ps(_mm256_load_ps(l + v * W), al, _mm256_add_ps(sum0, sum1)));
      _mm256_store_ps(m + v * W, mnew);
      _mm256_store_ps(alpha + v * W, al);
    }
    // O^T = alpha ∘ O^T + V_blk^T · P^T   (Dv × LQ)
    if (j0 == 0)
      gemm<false, false>(Dv, LQ, nk, vh + j0 * Dv, 1, Dv, S, LQ, Ot, LQ, nullptr);
    else
      gemm<true, true>(Dv, LQ, nk, vh + j0 * Dv, 1, Dv, S, LQ, Ot, LQ, alpha);
  }

  const __m256 ln2 = _mm256_set1_ps(static_cast<float>(kLn2));
  for (int v = 0; v < nv; ++v) {
    const __m256 lv = _mm256_load_ps(l + v * W);
    const __m256 lse2 = _mm256_add_ps(_mm256_load_ps(m + v * W), log2v(lv));
    _mm256_maskstore_ps(lseh + i0 + v * W, tail_mask(nq - v * W), _mm256_mul_ps(lse2, ln2));
    _mm256_store_ps(alpha + v * W, _mm256_div_ps(_mm256_set1_ps(1.f), lv));
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
  const __m256 vscale = _mm256_set1_ps(s.scale);

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
        const __m256 l2 = _mm256_load_ps(lse2 + v * W);
        const __m256 di = _mm256_load_ps(Di + v * W);
        for (int64_t j = 0; j < nk; ++j) {
          float* sp = S + j * LQ + v * W;
          float* dp = dP + j * LQ + v * W;
          const __m256 p = exp2v(_mm256_sub_ps(_mm256_load_ps(sp), l2));
          const __m256 ds = _mm256_mul_ps(_mm256_mul_ps(p, vscale), _mm256_sub_ps(_mm256_load_ps(dp), di));
          _mm256_store_ps(sp, p);
          _mm256_store_ps(dp, ds);
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

int64_t attention_fwd_tasks_avx2(const AttentionShape& s) { return s.B * s.H * ((s.Nq + BQ - 1) / BQ); }

size_t attention_fwd_scratch_floats_avx2(const AttentionShape& s) {
  return static_cast<size_t>((s.D + s.Dv + BK + 3) * BQ + 64);
}

void attention_fwd_avx2(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                          int64_t task_begin, int64_t task_end, float* scratch) {
  const int64_t nqb = (s.Nq + BQ - 1) / BQ;
  for (int64_t t = task_begin; t < task_end; ++t) {
    const int64_t bh = t / nqb, qb = t % nqb;
    fwd_block(s, q + bh * s.Nq * s.D, k + bh * s.Nk * s.D, v + bh * s.Nk * s.Dv, o + bh * s.Nq * s.Dv, lse + bh * s.Nq,
              qb * BQ, scratch);
  }
}

size_t attention_bwd_scratch_floats_avx2(const AttentionShape& s) {
  return static_cast<size_t>((2 * s.D + s.Dv + 2 * BK + 2) * BQ + 64);
}

void attention_bwd_avx2(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                          const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                          int64_t bh_end, float* scratch) {
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const int64_t qo = bh * s.Nq, ko = bh * s.Nk;
    bwd_head(s, q + qo * s.D, k + ko * s.D, v + ko * s.Dv, o + qo * s.Dv, lse + qo, go + qo * s.Dv, gq + qo * s.D,
             gk + ko * s.D, gv + ko * s.Dv, scratch);
  }
}

}  // namespace fd::kernels::impl
