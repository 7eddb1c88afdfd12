// AVX-512 SGEMM micro-kernels and packing routines (compiled with -mavx512f/bw/vl/dq).
// Micro-tile: 14 rows × 32 columns = 28 zmm accumulators; per k one B row (2 zmm
// loads) and 14 broadcasts folded into the FMAs ({1to16}). Edge tiles use the same
// template instantiated for fewer rows (1..14) / one zmm column, so no FMAs are
// spent on padding; the epilogue arithmetic is the same for full and partial tiles,
// so results never depend on where tile boundaries fall (thread-count invariant).
// ODR: only intrinsics, plain loops and internal-linkage helpers here.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/avx512/tile_avx512.h"
#include "kernels/gemm_impl.h"

namespace fd::kernels::avx512 {
namespace {
// The vector math of the vector kernels, for activations applied in registers (micro_act): the same functions,
// so the same bits as the separate pass.
namespace vec {
#include "kernels/avx512/simd_avx512.inl"
#include "kernels/simd/vector_math.inl"
}  // namespace vec

constexpr int MR = 14;
constexpr int NR = 32;

using impl::ConvSrc;
using impl::ConvTSrc;
using impl::MicroEpi;

// acc += A panel · B panel over kc; with kPrefetch, pf into L2 at every k step, advancing pf_step floats.
template <int R, int NV, bool kPrefetch>
__attribute__((always_inline)) inline void fma_steps(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                     const float* pf, int64_t pf_step, __m512 (&acc)[R][NV]) {
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    if (kPrefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T1);
      pf += pf_step;
    }
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }
}

// One micro-tile: acc = A panel · B panel over kc, stored through store_tile with `act` applied.
template <int R, int NV, class Act>
__attribute__((always_inline)) inline void tile_body(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                     float* c, int64_t ldc, int n, const MicroEpi* e, Act act) {
  __m512 acc[R][NV];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  if (e->prefetch)
    fma_steps<R, NV, true>(kc, a, b, e->prefetch, e->prefetch_step, acc);
  else
    fma_steps<R, NV, false>(kc, a, b, nullptr, 0, acc);
  store_tile<R, NV>(acc, c, ldc, n, e, act);
}

struct Fp32Tile {
  template <int R, int NV>
  static void tile(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int,
                   int n, const MicroEpi* e) {
    tile_body<R, NV>(kc, a, b, c, ldc, n, e, NoActivation{});
  }
};

void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, const MicroEpi* e) {
  micro_dispatch<Fp32Tile>(kc, a, b, c, ldc, m, n, e);
}

// A full MR × NR tile of a single-K-block product into C with the activation `op` applied in registers.
// Storing the tile and mapping it in a second pass cost 16–25 µs of 196×256 → 1024 (548 µs) even from L1.
bool micro_act(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, const MicroEpi* e, Unary op) {
  return vec::with_activation(op, [&](auto f) { tile_body<MR, 2>(kc, a, b, c, ldc, NR, e, f); });
}

void pack_a(const float* p, int64_t rs, int64_t cs, int64_t mc, int64_t kc, float* dst) {
  const __mmask16 row_mask = mask_n(MR);
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int m = static_cast<int>(mc - ip < MR ? mc - ip : MR);
    float* d = dst + ip * kc;
    const float* src = p + ip * rs;
    if (rs == 1) {
      const __mmask16 mm = mask_n(m);
      for (int64_t k = 0; k < kc; ++k)
        _mm512_mask_storeu_ps(d + k * MR, row_mask, _mm512_maskz_loadu_ps(mm, src + k * cs));
    } else if (cs == 1) {
      for (int64_t k0 = 0; k0 < kc; k0 += 16) {
        const int64_t kk = kc - k0 < 16 ? kc - k0 : 16;
        const __mmask16 km = mask_n(kk);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < m ? _mm512_maskz_loadu_ps(km, src + i * rs + k0) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < kk; ++j) _mm512_mask_storeu_ps(d + (k0 + j) * MR, row_mask, r[j]);
      }
    } else {
      for (int64_t k = 0; k < kc; ++k)
        for (int i = 0; i < MR; ++i) d[k * MR + i] = i < m ? src[i * rs + k * cs] : 0.f;
    }
  }
}

void pack_b(const float* p, int64_t rs, int64_t cs, int64_t kc, int64_t nc, float* dst) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t n = nc - jp < NR ? nc - jp : NR;
    float* d = dst + jp * kc;
    const float* src = p + jp * cs;
    if (cs == 1) {
      if (n == NR) {
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = src + k * rs;
          _mm512_store_ps(d + k * NR, _mm512_loadu_ps(s));
          _mm512_store_ps(d + k * NR + 16, _mm512_loadu_ps(s + 16));
        }
      } else {
        const __mmask16 m0 = mask_n(n), m1 = mask_n(n - 16);
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = src + k * rs;
          _mm512_store_ps(d + k * NR, _mm512_maskz_loadu_ps(m0, s));
          _mm512_store_ps(d + k * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
        }
      }
    } else if (rs == 1) {
      for (int64_t k0 = 0; k0 < kc; k0 += 16) {
        const int64_t kk = kc - k0 < 16 ? kc - k0 : 16;
        const __mmask16 km = mask_n(kk);
        for (int h = 0; h < 2; ++h) {
          __m512 r[16];
          for (int j = 0; j < 16; ++j) {
            const int64_t jj = 16 * h + j;
            r[j] = jj < n ? _mm512_maskz_loadu_ps(km, src + jj * cs + k0) : _mm512_setzero_ps();
          }
          transpose16(r);
          for (int t = 0; t < kk; ++t) _mm512_store_ps(d + (k0 + t) * NR + 16 * h, r[t]);
        }
      }
    } else {
      for (int64_t k = 0; k < kc; ++k)
        for (int j = 0; j < NR; ++j) d[k * NR + j] = j < n ? src[k * rs + j * cs] : 0.f;
    }
  }
}

// Copies len (≤ 32) floats src → dst with masks (no reads/writes outside the run).
inline void copy_run(float* dst, const float* src, int64_t len) {
  const __mmask16 m0 = mask_n(len), m1 = mask_n(len - 16);
  _mm512_mask_storeu_ps(dst, m0, _mm512_maskz_loadu_ps(m0, src));
  if (m1) _mm512_mask_storeu_ps(dst + 16, m1, _mm512_maskz_loadu_ps(m1, src + 16));
}

struct Seg {
  int64_t off, a, b, len;  // destination offset in the panel row, two coordinates, run length
};

// Generic im2col packing of one panel (any stride / segment count).
void pack_conv_panel_generic(const ConvSrc* s, int64_t k0, int64_t kc, const Seg* seg, int nseg, float* d) {
  const int64_t KK = s->KH * s->KW, HW = s->H * s->W;
  const __m512 z = _mm512_setzero_ps();
  int64_t c = k0 / KK, r = k0 % KK, kh = r / s->KW, kw = r % s->KW;
  for (int64_t k = 0; k < kc; ++k) {
    float* drow = d + k * NR;
    _mm512_store_ps(drow, z);
    _mm512_store_ps(drow + 16, z);
    const float* xc = s->x + c * HW;
    const int64_t dh = kh * s->dh, dw = kw * s->dw;
    for (int q = 0; q < nseg; ++q) {
      const int64_t ih = seg[q].a + dh;
      if (ih < 0 || ih >= s->H) continue;
      const float* row = xc + ih * s->W;
      const int64_t iw0 = seg[q].b + dw, len = seg[q].len;
      if (s->sw == 1) {
        const int64_t lo = iw0 < 0 ? -iw0 : 0;
        const int64_t hi = (s->W - iw0) < len ? (s->W - iw0) : len;
        if (lo < hi) copy_run(drow + seg[q].off + lo, row + iw0 + lo, hi - lo);
      } else {
        float* dd = drow + seg[q].off;
        for (int64_t t = 0; t < len; ++t) {
          const int64_t iw = iw0 + t * s->sw;
          dd[t] = (iw >= 0 && iw < s->W) ? row[iw] : 0.f;
        }
      }
    }
    if (++kw == s->KW) {
      kw = 0;
      if (++kh == s->KH) {
        kh = 0;
        ++c;
      }
    }
  }
}

constexpr int64_t PFD = 3;   // channels ahead to prefetch when reading the image
constexpr int kMaxKK = 64;    // table path: kernels up to 64 taps
constexpr int kMaxParts = 4;  // and at most 4 row runs per 16-lane half

struct Part {
  int64_t off;  // source offset of lane 0 relative to the channel base
  __mmask16 m;
};

// Per-panel load table of the implicit im2col: for stride-1 (along W) convs the
// loads of one panel row are the same for every channel up to the channel base, so
// the (offset, mask) pairs of each kernel tap are computed once per panel.
struct ConvTab {
  Part tab[kMaxKK][2][kMaxParts];
  int cnt[kMaxKK][2];
};

// Splits panel columns [j, j + n) into runs along output rows.
inline int conv_segments(const ConvSrc* s, int64_t j, int64_t n, Seg* seg) {
  int nseg = 0;
  int64_t oh = j / s->OW, ow = j % s->OW, off = 0;
  while (off < n) {
    const int64_t len = (n - off) < (s->OW - ow) ? (n - off) : (s->OW - ow);
    seg[nseg++] = Seg{off, oh * s->sh - s->ph, ow * s->sw - s->pw, len};
    off += len;
    ++oh;
    ow = 0;
  }
  return nseg;
}

// Fills the table; returns the most parts any tap/half needs (≥ 1; parts beyond a
// tap's count up to 2 are no-op loads), or -1 if the table path does not apply.
int build_tab(const ConvSrc* s, const Seg* seg, int nseg, ConvTab* T) {
  const int64_t KK = s->KH * s->KW;
  if (s->sw != 1 || KK > kMaxKK || nseg > kMaxParts) return -1;
  for (int64_t r = 0; r < KK; ++r) {
    const int64_t dh = (r / s->KW) * s->dh, dw = (r % s->KW) * s->dw;
    int* cnt = T->cnt[r];
    cnt[0] = cnt[1] = 0;
    for (int q = 0; q < nseg; ++q) {
      const int64_t ih = seg[q].a + dh;
      if (ih < 0 || ih >= s->H) continue;
      const int64_t iw0 = seg[q].b + dw, len = seg[q].len;
      const int64_t lo = iw0 < 0 ? -iw0 : 0;
      const int64_t hi = (s->W - iw0) < len ? (s->W - iw0) : len;
      if (lo >= hi) continue;
      const int64_t p0 = seg[q].off + lo, p1 = seg[q].off + hi;  // destination lanes [p0, p1)
      for (int h = 0; h < 2; ++h) {
        const int64_t a = p0 > 16 * h ? p0 : 16 * h, b = p1 < 16 * h + 16 ? p1 : 16 * h + 16;
        if (a >= b) continue;
        const uint32_t bits = ((b - a >= 16) ? 0xFFFFu : ((1u << (b - a)) - 1u)) << (a - 16 * h);
        T->tab[r][h][cnt[h]++] = Part{ih * s->W + iw0 - seg[q].off + 16 * h, static_cast<__mmask16>(bits)};
      }
    }
  }
  int maxc = 1;
  for (int64_t r = 0; r < KK; ++r) {
    for (int h = 0; h < 2; ++h) {
      maxc = T->cnt[r][h] > maxc ? T->cnt[r][h] : maxc;
      for (int q = T->cnt[r][h]; q < 2; ++q) T->tab[r][h][q] = Part{0, 0};  // empty parts: no-op loads
    }
  }
  return maxc;
}

// One packed row from the table (MAXC 1 or 2 parts per half), with a prefetch of
// the same loads PFD channels ahead.
template <int MAXC>
__attribute__((always_inline)) inline void tab_row(const ConvTab* T, int64_t r, const float* xc, int64_t HW,
                                                   __m512& v0, __m512& v1) {
  const Part* t = T->tab[r][0];
  const Part* u = T->tab[r][1];
  _mm_prefetch(reinterpret_cast<const char*>(xc + PFD * HW + t[0].off), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(xc + PFD * HW + u[MAXC - 1].off + 15), _MM_HINT_T0);
  v0 = _mm512_maskz_loadu_ps(t[0].m, xc + t[0].off);
  v1 = _mm512_maskz_loadu_ps(u[0].m, xc + u[0].off);
  if (MAXC == 2) {
    v0 = _mm512_mask_loadu_ps(v0, t[1].m, xc + t[1].off);
    v1 = _mm512_mask_loadu_ps(v1, u[1].m, xc + u[1].off);
  }
}

template <int MAXC>
void pack_tab_rows(const ConvTab* T, int64_t KK, int64_t r, const float* xc, int64_t HW, int64_t kc, float* d) {
  for (int64_t k = 0; k < kc; ++k) {
    __m512 v0, v1;
    tab_row<MAXC>(T, r, xc, HW, v0, v1);
    _mm512_store_ps(d + k * NR, v0);
    _mm512_store_ps(d + k * NR + 16, v1);
    if (++r == KK) {
      r = 0;
      xc += HW;
    }
  }
}

void pack_b_conv(const ConvSrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  const int64_t KK = s->KH * s->KW, HW = s->H * s->W;
  ConvTab T;
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t n = nc - jp < NR ? nc - jp : NR;
    float* d = dst + jp * kc;
    Seg seg[NR];
    const int nseg = conv_segments(s, j0 + jp, n, seg);
    const int maxc = build_tab(s, seg, nseg, &T);
    if (maxc < 0) {
      pack_conv_panel_generic(s, k0, kc, seg, nseg, d);
      continue;
    }
    const int64_t r = k0 % KK;
    const float* xc = s->x + (k0 / KK) * HW;
    if (maxc == 1) {  // one run per half (e.g. OW a multiple of 32): 2 zero-masked loads per row
      pack_tab_rows<1>(&T, KK, r, xc, HW, kc, d);
    } else if (maxc == 2) {  // panel spans two output rows
      pack_tab_rows<2>(&T, KK, r, xc, HW, kc, d);
    } else {
      int64_t rr = r;
      for (int64_t k = 0; k < kc; ++k) {
        float* drow = d + k * NR;
        for (int h = 0; h < 2; ++h) {
          __m512 v = _mm512_setzero_ps();
          for (int q = 0; q < T.cnt[rr][h]; ++q) v = _mm512_mask_loadu_ps(v, T.tab[rr][h][q].m, xc + T.tab[rr][h][q].off);
          _mm512_store_ps(drow + 16 * h, v);
        }
        if (++rr == KK) {
          rr = 0;
          xc += HW;
        }
      }
    }
  }
}

// Zeroes a full MR×32 accumulator tile and prefetches the C rows it will update.
__attribute__((always_inline)) inline void start_tile(__m512 (&acc)[MR][2], const float* c, int64_t ldc) {
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
}

// Fused pack + first micro-tile (full MR rows, NV = 2): each B row is loaded from
// the image once, stored to the packed panel for the remaining tiles and used
// straight from registers here. Same FMA order as Fp32Tile::tile<MR, 2>.
template <int MAXC>
void conv_first_t(int64_t kc, const float* __restrict a, const ConvTab* T, int64_t KK, int64_t r, const float* xc,
                  int64_t HW, float* __restrict d, float* c, int64_t ldc, int n, const MicroEpi* e) {
  __m512 acc[MR][2];
  start_tile(acc, c, ldc);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b0, b1;
    tab_row<MAXC>(T, r, xc, HW, b0, b1);
    _mm512_store_ps(d, b0);
    _mm512_store_ps(d + 16, b1);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    d += NR;
    if (++r == KK) {
      r = 0;
      xc += HW;
    }
  }
  store_tile<MR, 2>(acc, c, ldc, n, e);
}

int conv_first(const ConvSrc* s, int64_t k0, int64_t kc, int64_t j0, int n, const float* a, float* bdst, float* c,
               int64_t ldc, int m, const MicroEpi* e) {
  if (m != MR || n <= 16 || n > NR) return 0;
  Seg seg[NR];
  const int nseg = conv_segments(s, j0, n, seg);
  ConvTab T;
  const int maxc = build_tab(s, seg, nseg, &T);
  if (maxc < 0 || maxc > 2) return 0;
  const int64_t KK = s->KH * s->KW, HW = s->H * s->W;
  const int64_t r = k0 % KK;
  const float* xc = s->x + (k0 / KK) * HW;
  if (maxc == 1)
    conv_first_t<1>(kc, a, &T, KK, r, xc, HW, bdst, c, ldc, n, e);
  else
    conv_first_t<2>(kc, a, &T, KK, r, xc, HW, bdst, c, ldc, n, e);
  return 1;
}

void pack_b_convt(const ConvTSrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  const __m512 z = _mm512_setzero_ps();
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t n = nc - jp < NR ? nc - jp : NR;
    float* d = dst + jp * kc;
    Seg seg[NR];
    int nseg = 0;
    {
      int64_t j = j0 + jp, khw = j / s->C, c = j % s->C, off = 0;
      while (off < n) {
        const int64_t len = (n - off) < (s->C - c) ? (n - off) : (s->C - c);
        const int64_t kh = khw / s->KW, kw = khw % s->KW;
        seg[nseg++] = Seg{off, ((kh * s->dh) * s->Wp + kw * s->dw) * s->C + c, 0, len};
        off += len;
        ++khw;
        c = 0;
      }
    }
    const bool whole = (nseg == 1 && n == NR);
    int64_t oh = k0 / s->OW, ow = k0 % s->OW;
    for (int64_t k = 0; k < kc; ++k) {
      float* drow = d + k * NR;
      const float* base = s->xt + (oh * s->sh * s->Wp + ow * s->sw) * s->C;
      if (whole) {
        const float* src = base + seg[0].a;
        _mm512_store_ps(drow, _mm512_loadu_ps(src));
        _mm512_store_ps(drow + 16, _mm512_loadu_ps(src + 16));
      } else {
        _mm512_store_ps(drow, z);
        _mm512_store_ps(drow + 16, z);
        for (int q = 0; q < nseg; ++q) copy_run(drow + seg[q].off, base + seg[q].a, seg[q].len);
      }
      if (++ow == s->OW) {
        ow = 0;
        ++oh;
      }
    }
  }
}

// Fused pack + first micro-tile for the weight-gradient source when the panel is
// one contiguous run of 32 channels (same FMA order as Fp32Tile::tile<MR, 2>).
int convt_first(const ConvTSrc* s, int64_t k0, int64_t kc, int64_t j0, int n, const float* __restrict a,
                float* __restrict d, float* c, int64_t ldc, int m, const MicroEpi* e) {
  if (m != MR || n != NR) return 0;
  const int64_t khw = j0 / s->C, c0 = j0 % s->C;
  if (s->C - c0 < NR) return 0;
  const int64_t kh = khw / s->KW, kw = khw % s->KW;
  const float* src = s->xt + ((kh * s->dh) * s->Wp + kw * s->dw) * s->C + c0;
  int64_t oh = k0 / s->OW, ow = k0 % s->OW;
  const int64_t step = s->sw * s->C, row_step = s->sh * s->Wp * s->C;
  const float* p = src + oh * row_step + ow * step;
  const float* row = src + oh * row_step;
  __m512 acc[MR][2];
  start_tile(acc, c, ldc);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(p);
    const __m512 b1 = _mm512_loadu_ps(p + 16);
    _mm512_store_ps(d, b0);
    _mm512_store_ps(d + 16, b1);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    d += NR;
    p += step;
    if (++ow == s->OW) {
      ow = 0;
      row += row_step;
      p = row;
    }
  }
  store_tile<MR, 2>(acc, c, ldc, n, e);
  return 1;
}

void to_nhwc(const float* x, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t Hp, int64_t Wp,
             float* dst) {
  const int64_t HW = H * W;
  const int64_t w_lo = pw < 0 ? -pw : 0, w_hi = (Wp - pw) < W ? (Wp - pw) : W;  // iw range that lands in [0, Wp)
  for (int64_t hp = 0; hp < Hp; ++hp) {
    const int64_t ih = hp - ph;
    float* drow = dst + hp * Wp * C;
    if (ih < 0 || ih >= H || w_lo >= w_hi) {
      std::memset(drow, 0, sizeof(float) * static_cast<size_t>(Wp * C));
      continue;
    }
    if (w_lo + pw > 0) std::memset(drow, 0, sizeof(float) * static_cast<size_t>((w_lo + pw) * C));
    if (w_hi + pw < Wp)
      std::memset(drow + (w_hi + pw) * C, 0, sizeof(float) * static_cast<size_t>((Wp - w_hi - pw) * C));
    const float* xrow = x + ih * W;
    for (int64_t w0 = w_lo; w0 < w_hi; w0 += 16) {
      const int64_t ww = w_hi - w0 < 16 ? w_hi - w0 : 16;
      const __mmask16 wm = mask_n(ww);
      for (int64_t c0 = 0; c0 < C; c0 += 16) {
        const int64_t cc = C - c0 < 16 ? C - c0 : 16;
        const __mmask16 cm = mask_n(cc);
        __m512 r[16];
        for (int i = 0; i < 16; ++i) {
          // the next image row (read on the next hp) is prefetched alongside
          if (i < cc) _mm_prefetch(reinterpret_cast<const char*>(xrow + W + (c0 + i) * HW + w0), _MM_HINT_T0);
          r[i] = i < cc ? _mm512_maskz_loadu_ps(wm, xrow + (c0 + i) * HW + w0) : _mm512_setzero_ps();
        }
        transpose16(r);
        if (cc == 16)  // masked stores are slow on some cores: plain stores when the run is whole
          for (int t = 0; t < ww; ++t) _mm512_storeu_ps(drow + (pw + w0 + t) * C + c0, r[t]);
        else
          for (int t = 0; t < ww; ++t) _mm512_mask_storeu_ps(drow + (pw + w0 + t) * C + c0, cm, r[t]);
      }
    }
  }
}

// Blocking: long K blocks (kc = 1024: C is read and written once per K block, and each
// micro-tile call amortises its prologue/epilogue over up to 1024 k steps). The A and
// B micro-panels then stream from L2 (A block mc·kc = 560 KiB of the 1 MiB L2), which
// the 14×32 tile tolerates: 184 bytes per 28 FMA cycles. Packed B block kc·nc = 4 MiB.
// Conv sources keep kc_conv = 600 and mc_conv = 168 (OC ≤ 168 in one row block).
const impl::KernelSet kSet = {MR,           NR,       1024,         140,          1024,
                              &micro,       &pack_a,  &pack_b,      &pack_b_conv, &pack_b_convt, &conv_first, &convt_first,
                              &to_nhwc,      600,      168,      &micro_act};

}  // namespace
}  // namespace fd::kernels::avx512

namespace fd::kernels::impl::avx512 {
const KernelSet* kernel_set() { return &fd::kernels::avx512::kSet; }
}  // namespace fd::kernels::impl::avx512
