// BF16 GEMM for matmul precision "medium" on CPUs with AVX512-BF16 (compiled with the AVX-512
// flags, which include -mavx512bf16; selected only when the CPU reports the feature).
// The operands are rounded to bfloat16 (round to nearest even, like vcvtne2ps2bf16) while they are
// packed; products accumulate in float32 with vdpbf16ps, which adds two products per lane per
// instruction: twice the float32 FMA peak (PERF.md: 230 vs 116 GFLOP/s per Zen 4 core); measured GEMMs
// run 1.6–1.8× float32 (bench/RESULTS.md, 2026-12-05).
//
// Packed layouts reuse the float32 driver's panel offsets (panel p at p·mr·kc floats) and fill the
// first half of each panel with k-pairs: element (kp, lane) is one 32-bit word holding
// (bf16 of k = 2kp in the low half, bf16 of k = 2kp + 1 in the high half), zero past kc. So A is
// [kp][MR] words and B [kp][NR] words, and one vdpbf16ps of a broadcast A word with a B vector
// accumulates k = 2kp and 2kp + 1 of 16 columns. The epilogue is the float32 kernels' (store_tile).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/avx512/tile_avx512.h"
#include "kernels/gemm_impl.h"

namespace fd::kernels::avx512 {
namespace {

constexpr int MR = 14;
constexpr int NR = 32;

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

struct Bf16Tile {
  template <int R, int NV>
  static void tile(int64_t kc, const float* a_panel, const float* b_panel, float* c, int64_t ldc, int m, int n,
                   const MicroEpi* e) {
    const uint32_t* __restrict a = reinterpret_cast<const uint32_t*>(a_panel);
    const uint32_t* __restrict b = reinterpret_cast<const uint32_t*>(b_panel);
    __m512 acc[R][NV];
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    }
    const int64_t pairs = (kc + 1) / 2;
#pragma GCC unroll 4
    for (int64_t kp = 0; kp < pairs; ++kp) {
      __m512bh bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = as_bh(_mm512_load_si512(b + 16 * v));
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        const __m512bh ai = as_bh(_mm512_set1_epi32(static_cast<int>(a[i])));
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
      }
      a += MR;
      b += NR;
    }
    store_tile<R, NV>(acc, c, ldc, n, e);
  }
};

void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, const MicroEpi* e) {
  micro_dispatch<Bf16Tile>(kc, a, b, c, ldc, m, n, e);
}

// Packs `lanes` (≤ width) sources into [kp][width] pair words, 16 lanes at a time; lanes past
// `lanes` (up to width) are zero. Source lane l, element k is p[l·ls + k·ks].
//  ks == 1 (k contiguous per lane: A row-major, or B = Wᵀ of a linear layer): 32 k of each of 16
//    lanes convert to 16 pair words in order, then a 16×16 word transpose puts lanes in rows.
//  ls == 1 (lanes contiguous per k): two k rows convert together and their halves interleave.
void pack_pairs(const float* p, int64_t ls, int64_t ks, int lanes, int64_t kc, int width, uint32_t* dst) {
  const int64_t pairs = (kc + 1) / 2;
  for (int g = 0; g < width; g += 16) {
    const int glanes = lanes - g < 16 ? (lanes - g > 0 ? lanes - g : 0) : 16;
    const __mmask16 store_mask = mask_n(width - g);
    const float* src = p + g * ls;
    uint32_t* d = dst + g;
    if (ks == 1) {
      for (int64_t k0 = 0; k0 < kc; k0 += 32) {
        const int64_t kk = kc - k0 < 32 ? kc - k0 : 32;
        const __mmask16 lo = mask_n(kk), hi = mask_n(kk - 16);
        __m512 r[16];
        for (int l = 0; l < 16; ++l) {
          if (l >= glanes) {
            r[l] = _mm512_setzero_ps();
            continue;
          }
          const float* s = src + l * ls + k0;
          const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + 16), _mm512_maskz_loadu_ps(lo, s));
          r[l] = reinterpret_cast<const __m512&>(h);
        }
        transpose16(r);
        const int64_t np = (kk + 1) / 2;
        for (int64_t j = 0; j < np; ++j) _mm512_mask_storeu_ps(reinterpret_cast<float*>(d + (k0 / 2 + j) * width), store_mask, r[j]);
      }
    } else if (ls == 1) {
      // word l of the result = (row k lane l, row k+1 lane l): interleave the two 16-value halves
      alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                               21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                               11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
      const __m512i idx = _mm512_load_si512(kInterleave);
      const __mmask16 lm = mask_n(glanes);
      for (int64_t kp = 0; kp < pairs; ++kp) {
        const float* s = src + 2 * kp * ks;
        const __m512 k0v = _mm512_maskz_loadu_ps(lm, s);
        const __m512 k1v = 2 * kp + 1 < kc ? _mm512_maskz_loadu_ps(lm, s + ks) : _mm512_setzero_ps();
        const __m512bh h = _mm512_cvtne2ps_pbh(k1v, k0v);
        const __m512i w = _mm512_permutexvar_epi16(idx, reinterpret_cast<const __m512i&>(h));
        _mm512_mask_storeu_epi32(d + kp * width, store_mask, w);
      }
    } else {
      for (int64_t kp = 0; kp < pairs; ++kp)
        for (int l = 0; l < 16 && g + l < width; ++l) {
          uint32_t word = 0;
          if (l < glanes) {
            const float* s = src + l * ls + 2 * kp * ks;
            word = ref::bf16_bits(s[0]);
            if (2 * kp + 1 < kc) word |= uint32_t(ref::bf16_bits(s[ks])) << 16;
          }
          d[kp * width + l] = word;
        }
    }
  }
}

void pack_a(const float* p, int64_t rs, int64_t cs, int64_t mc, int64_t kc, float* dst) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int m = static_cast<int>(mc - ip < MR ? mc - ip : MR);
    pack_pairs(p + ip * rs, rs, cs, m, kc, MR, reinterpret_cast<uint32_t*>(dst + ip * kc));
  }
}

void pack_b(const float* p, int64_t rs, int64_t cs, int64_t kc, int64_t nc, float* dst) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int n = static_cast<int>(nc - jp < NR ? nc - jp : NR);
    pack_pairs(p + jp * cs, cs, rs, n, kc, NR, reinterpret_cast<uint32_t*>(dst + jp * kc));
  }
}

// Same blocking as the float32 set: a packed k-pair costs the bytes of one float32 k, so the
// panels hold twice the K in the same cache footprint. No convolution sources (sgemm only).
const impl::KernelSet kSet = {MR,      NR,      1024,    140,     1024,    &micro, &pack_a, &pack_b,
                              nullptr, nullptr, nullptr, nullptr, nullptr, 0,      0};

}  // namespace
}  // namespace fd::kernels::avx512

namespace fd::kernels::impl::avx512 {
const KernelSet* bf16_kernel_set() { return &fd::kernels::avx512::kSet; }
}  // namespace fd::kernels::impl::avx512
