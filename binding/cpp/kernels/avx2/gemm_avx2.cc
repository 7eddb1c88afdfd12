// AVX2/FMA SGEMM micro-kernels and packing routines (compiled with -mavx2 -mfma).
// Micro-tile: 6 rows × 16 columns = 12 ymm accumulators (2 B loads + 6 broadcasts
// per k). Edge tiles use the same template for fewer rows / one ymm column; the
// epilogue arithmetic is identical for full and partial tiles, so results do not
// depend on tile boundaries (thread-count invariant).
// ODR: only intrinsics, plain loops and internal-linkage helpers here.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/gemm_impl.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace fd::kernels::avx2 {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;

using impl::ConvSrc;
using impl::ConvTSrc;
using impl::MicroEpi;

alignas(32) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

// Lanes [0, n) set (n clamped to [0, 8]).
inline __m256i mask_n(int64_t n) {
  n = n < 0 ? 0 : (n > 8 ? 8 : n);
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
}

template <int R, int NV>
void micro_t(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int m, int n,
             const MicroEpi* e) {
  __m256 acc[R][NV];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * NV - 1), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }

  const __m256 va = _mm256_set1_ps(e->alpha);
  const float beta = e->beta;
  const __m256 vb = _mm256_set1_ps(beta);
  __m256i mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = mask_n(n - 8 * v);
  const bool full = (n == 8 * NV);
  if (e->first) {
    __m256 bc[NV];
    for (int v = 0; v < NV; ++v)
      bc[v] = e->bias_col ? _mm256_maskload_ps(e->bias_col + 8 * v, mk[v]) : _mm256_setzero_ps();
    const bool has_bc = e->bias_col != nullptr;
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      float* cr = c + i * ldc;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        __m256 r = _mm256_mul_ps(acc[i][v], va);
        if (beta != 0.f) {
          const __m256 old = full ? _mm256_loadu_ps(cr + 8 * v) : _mm256_maskload_ps(cr + 8 * v, mk[v]);
          r = _mm256_fmadd_ps(vb, old, r);
        }
        if (e->bias_row) r = _mm256_add_ps(r, _mm256_set1_ps(e->bias_row[i]));
        if (has_bc) r = _mm256_add_ps(r, bc[v]);
        if (full)
          _mm256_storeu_ps(cr + 8 * v, r);
        else
          _mm256_maskstore_ps(cr + 8 * v, mk[v], r);
      }
    }
  } else {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      float* cr = c + i * ldc;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        if (full) {
          _mm256_storeu_ps(cr + 8 * v, _mm256_fmadd_ps(acc[i][v], va, _mm256_loadu_ps(cr + 8 * v)));
        } else {
          const __m256 old = _mm256_maskload_ps(cr + 8 * v, mk[v]);
          _mm256_maskstore_ps(cr + 8 * v, mk[v], _mm256_fmadd_ps(acc[i][v], va, old));
        }
      }
    }
  }
}

using MicroFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, int, const MicroEpi*);

#define FD_ROW(R) {&micro_t<R, 1>, &micro_t<R, 2>}
const MicroFn kMicro[MR + 1][2] = {{nullptr, nullptr}, FD_ROW(1), FD_ROW(2), FD_ROW(3),
                                   FD_ROW(4),          FD_ROW(5), FD_ROW(6)};
#undef FD_ROW

void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, const MicroEpi* e) {
  kMicro[m][n > 8 ? 1 : 0](kc, a, b, c, ldc, m, n, e);
}

// In-register 8×8 transpose: r[j] lane i = in[i] lane j.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 2; ++q) {
    const __m256d t0 = _mm256_castps_pd(t[4 * q]), t1 = _mm256_castps_pd(t[4 * q + 1]);
    const __m256d t2 = _mm256_castps_pd(t[4 * q + 2]), t3 = _mm256_castps_pd(t[4 * q + 3]);
    u[4 * q + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));  // cols 0,4
    u[4 * q + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));  // cols 1,5
    u[4 * q + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));  // cols 2,6
    u[4 * q + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));  // cols 3,7
  }
  for (int s = 0; s < 4; ++s) {
    r[s] = _mm256_permute2f128_ps(u[s], u[4 + s], 0x20);
    r[s + 4] = _mm256_permute2f128_ps(u[s], u[4 + s], 0x31);
  }
}

void pack_a(const float* p, int64_t rs, int64_t cs, int64_t mc, int64_t kc, float* dst) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int m = static_cast<int>(mc - ip < MR ? mc - ip : MR);
    float* d = dst + ip * kc;
    const float* src = p + ip * rs;
    if (rs == 1 && m == MR) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * cs;
        float* dd = d + k * MR;
        for (int i = 0; i < MR; ++i) dd[i] = s[i];
      }
    } else if (cs == 1) {
      int64_t k0 = 0;
      for (; k0 + 8 <= kc; k0 += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = i < m ? _mm256_loadu_ps(src + i * rs + k0) : _mm256_setzero_ps();
        transpose8(r);
        for (int j = 0; j < 8; ++j) {
          alignas(32) float tmp[8];
          _mm256_store_ps(tmp, r[j]);
          float* dd = d + (k0 + j) * MR;
          for (int i = 0; i < MR; ++i) dd[i] = tmp[i];
        }
      }
      for (; k0 < kc; ++k0)
        for (int i = 0; i < MR; ++i) d[k0 * MR + i] = i < m ? src[i * rs + k0] : 0.f;
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
          _mm256_store_ps(d + k * NR, _mm256_loadu_ps(s));
          _mm256_store_ps(d + k * NR + 8, _mm256_loadu_ps(s + 8));
        }
      } else {
        const __m256i m0 = mask_n(n), m1 = mask_n(n - 8);
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = src + k * rs;
          _mm256_store_ps(d + k * NR, _mm256_maskload_ps(s, m0));
          _mm256_store_ps(d + k * NR + 8, _mm256_maskload_ps(s + 8, m1));
        }
      }
    } else if (rs == 1) {
      int64_t k0 = 0;
      for (; k0 + 8 <= kc; k0 += 8) {
        for (int h = 0; h < 2; ++h) {
          __m256 r[8];
          for (int j = 0; j < 8; ++j) {
            const int64_t jj = 8 * h + j;
            r[j] = jj < n ? _mm256_loadu_ps(src + jj * cs + k0) : _mm256_setzero_ps();
          }
          transpose8(r);
          for (int t = 0; t < 8; ++t) _mm256_store_ps(d + (k0 + t) * NR + 8 * h, r[t]);
        }
      }
      for (; k0 < kc; ++k0)
        for (int j = 0; j < NR; ++j) d[k0 * NR + j] = j < n ? src[k0 + j * cs] : 0.f;
    } else {
      for (int64_t k = 0; k < kc; ++k)
        for (int j = 0; j < NR; ++j) d[k * NR + j] = j < n ? src[k * rs + j * cs] : 0.f;
    }
  }
}

struct Seg {
  int64_t off, a, b, len;
};

// Splits n consecutive output pixels starting at flat index j into runs along
// output rows: (offset in the panel, top input row, left input column, length).
int output_runs(const ConvSrc* s, int64_t j, int64_t n, Seg* seg) {
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

void pack_b_conv_generic(const ConvSrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  const int64_t KK = s->KH * s->KW, HW = s->H * s->W;
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t n = nc - jp < NR ? nc - jp : NR;
    float* d = dst + jp * kc;
    Seg seg[NR];
    const int nseg = output_runs(s, j0 + jp, n, seg);
    int64_t c = k0 / KK, r = k0 % KK, kh = r / s->KW, kw = r % s->KW;
    for (int64_t k = 0; k < kc; ++k) {
      float* drow = d + k * NR;
      _mm256_store_ps(drow, _mm256_setzero_ps());
      _mm256_store_ps(drow + 8, _mm256_setzero_ps());
      const float* xc = s->x + c * HW;
      const int64_t dh = kh * s->dh, dw = kw * s->dw;
      for (int q = 0; q < nseg; ++q) {
        const int64_t ih = seg[q].a + dh;
        if (ih < 0 || ih >= s->H) continue;
        const float* row = xc + ih * s->W;
        const int64_t iw0 = seg[q].b + dw, len = seg[q].len;
        float* dd = drow + seg[q].off;
        if (s->sw == 1) {
          const int64_t lo = iw0 < 0 ? -iw0 : 0;
          const int64_t hi = (s->W - iw0) < len ? (s->W - iw0) : len;
          if (lo < hi) {
            const int64_t l = hi - lo;
            const __m256i m0 = mask_n(l), m1 = mask_n(l - 8);
            _mm256_maskstore_ps(dd + lo, m0, _mm256_maskload_ps(row + iw0 + lo, m0));
            if (l > 8) _mm256_maskstore_ps(dd + lo + 8, m1, _mm256_maskload_ps(row + iw0 + lo + 8, m1));
          }
        } else {
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
}

constexpr int kMaxKK = 64;    // table path: kernels up to 64 taps
constexpr int kMaxParts = 2;  // and at most 2 row runs per 8-lane half

struct Part {
  int64_t off;   // source offset of lane 0 relative to the channel base
  __m256i mask;  // lanes taken from this run
};

// Implicit im2col, stride 1 along W: per-tap (offset, mask) pairs computed once per
// panel; each packed row is then 1–2 masked loads per 8 lanes (masked-out lanes
// read as 0 and are not accessed). Other geometries use the generic packer.
void pack_b_conv(const ConvSrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  const int64_t KK = s->KH * s->KW, HW = s->H * s->W;
  if (s->sw != 1 || KK > kMaxKK) return pack_b_conv_generic(s, k0, kc, j0, nc, dst);
  Part tab[kMaxKK][2][kMaxParts];
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t n = nc - jp < NR ? nc - jp : NR;
    float* d = dst + jp * kc;
    Seg seg[NR];
    const int nseg = output_runs(s, j0 + jp, n, seg);
    bool ok = true;
    for (int64_t r = 0; r < KK && ok; ++r) {
      const int64_t dh = (r / s->KW) * s->dh, dw = (r % s->KW) * s->dw;
      int cnt[2] = {0, 0};
      for (int q = 0; q < nseg && ok; ++q) {
        const int64_t ih = seg[q].a + dh;
        if (ih < 0 || ih >= s->H) continue;
        const int64_t iw0 = seg[q].b + dw, len = seg[q].len;
        const int64_t lo = iw0 < 0 ? -iw0 : 0;
        const int64_t hi = (s->W - iw0) < len ? (s->W - iw0) : len;
        if (lo >= hi) continue;
        const int64_t p0 = seg[q].off + lo, p1 = seg[q].off + hi;
        for (int h = 0; h < 2; ++h) {
          const int64_t a = p0 > 8 * h ? p0 : 8 * h, b = p1 < 8 * h + 8 ? p1 : 8 * h + 8;
          if (a >= b) continue;
          if (cnt[h] == kMaxParts) {
            ok = false;
            break;
          }
          alignas(32) int32_t m[8];
          for (int l = 0; l < 8; ++l) m[l] = (8 * h + l >= a && 8 * h + l < b) ? -1 : 0;
          tab[r][h][cnt[h]++] = Part{ih * s->W + iw0 - seg[q].off + 8 * h,
                                     _mm256_load_si256(reinterpret_cast<const __m256i*>(m))};
        }
      }
      for (int h = 0; h < 2; ++h)
        for (int q = cnt[h]; q < kMaxParts; ++q) tab[r][h][q] = Part{0, _mm256_setzero_si256()};
    }
    if (!ok) {
      pack_b_conv_generic(s, k0, kc, j0 + jp, n, d);
      continue;
    }
    int64_t r = k0 % KK;
    const float* xc = s->x + (k0 / KK) * HW;
    for (int64_t k = 0; k < kc; ++k) {
      float* drow = d + k * NR;
      for (int h = 0; h < 2; ++h) {
        const Part* t = tab[r][h];
        const __m256 v = _mm256_or_ps(_mm256_maskload_ps(xc + t[0].off, t[0].mask),
                                      _mm256_maskload_ps(xc + t[1].off, t[1].mask));
        _mm256_store_ps(drow + 8 * h, v);
      }
      if (++r == KK) {
        r = 0;
        xc += HW;
      }
    }
  }
}

void pack_b_convt(const ConvTSrc* s, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
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
        _mm256_store_ps(drow, _mm256_loadu_ps(src));
        _mm256_store_ps(drow + 8, _mm256_loadu_ps(src + 8));
      } else {
        _mm256_store_ps(drow, _mm256_setzero_ps());
        _mm256_store_ps(drow + 8, _mm256_setzero_ps());
        for (int q = 0; q < nseg; ++q) {
          const float* src = base + seg[q].a;
          float* dd = drow + seg[q].off;
          const int64_t l = seg[q].len;
          const __m256i m0 = mask_n(l), m1 = mask_n(l - 8);
          _mm256_maskstore_ps(dd, m0, _mm256_maskload_ps(src, m0));
          if (l > 8) _mm256_maskstore_ps(dd + 8, m1, _mm256_maskload_ps(src + 8, m1));
        }
      }
      if (++ow == s->OW) {
        ow = 0;
        ++oh;
      }
    }
  }
}

void to_nhwc(const float* x, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t Hp, int64_t Wp,
             float* dst) {
  const int64_t HW = H * W;
  const int64_t w_lo = pw < 0 ? -pw : 0, w_hi = (Wp - pw) < W ? (Wp - pw) : W;
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
    int64_t w0 = w_lo;
    for (; w0 + 8 <= w_hi; w0 += 8) {
      int64_t c0 = 0;
      for (; c0 + 8 <= C; c0 += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(xrow + (c0 + i) * HW + w0);
        transpose8(r);
        for (int t = 0; t < 8; ++t) _mm256_storeu_ps(drow + (pw + w0 + t) * C + c0, r[t]);
      }
      for (; c0 < C; ++c0)
        for (int t = 0; t < 8; ++t) drow[(pw + w0 + t) * C + c0] = xrow[c0 * HW + w0 + t];
    }
    for (; w0 < w_hi; ++w0)
      for (int64_t c = 0; c < C; ++c) drow[(pw + w0) * C + c] = xrow[c * HW + w0];
  }
}

const impl::KernelSet kSet = {MR,           NR,       256,          120,          4096,
                              &micro,       &pack_a,  &pack_b,      &pack_b_conv, &pack_b_convt, nullptr, nullptr,
                              &to_nhwc,      256,      0};

}  // namespace
}  // namespace fd::kernels::avx2

namespace fd::kernels::impl::avx2 {
const KernelSet* kernel_set() { return &fd::kernels::avx2::kSet; }
}  // namespace fd::kernels::impl::avx2
