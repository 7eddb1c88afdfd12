// Helpers shared by the AVX-512 GEMM files (float32 and bf16 micro-kernels): edge masks, the
// one epilogue every micro-tile stores through (so full and partial tiles, float32 and bf16
// kernels round the same way), and the in-register 16×16 transpose used by the packers.
// Include only from files compiled with the AVX-512 flags; everything here has internal
// linkage (no ODR sharing with baseline-compiled code).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/gemm_impl.h"

// GCC 12 warns falsely about _mm512_undefined_ps() inside the shuffle intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace fd::kernels::avx512 {
namespace {

using impl::MicroEpi;

inline __mmask16 mask_n(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : (n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u));
}

struct NoActivation {
  __m512 operator()(__m512 r) const { return r; }
};

// Epilogue of one tile (shared by every micro-kernel, so the arithmetic is identical). `act` maps each finished
// vector of the first K block before it is stored (an activation that a later pass would otherwise apply).
template <int R, int NV, class Act = NoActivation>
__attribute__((always_inline)) inline void store_tile(__m512 (&acc)[R][NV], float* c, int64_t ldc, int n, const MicroEpi* e,
                                                      Act act = {}) {
  const __m512 va = _mm512_set1_ps(e->alpha);
  const float beta = e->beta;
  const __m512 vb = _mm512_set1_ps(beta);
  __mmask16 mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = mask_n(n - 16 * v);
  const bool full = (n == 16 * NV);
  if (e->first) {
    __m512 bc[NV];
    for (int v = 0; v < NV; ++v)
      bc[v] = e->bias_col ? _mm512_maskz_loadu_ps(mk[v], e->bias_col + 16 * v) : _mm512_setzero_ps();
    const bool has_bc = e->bias_col != nullptr;
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      float* cr = c + i * ldc;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        __m512 r = _mm512_mul_ps(acc[i][v], va);
        if (beta != 0.f) {
          const __m512 old = full ? _mm512_loadu_ps(cr + 16 * v) : _mm512_maskz_loadu_ps(mk[v], cr + 16 * v);
          r = _mm512_fmadd_ps(vb, old, r);
        }
        if (e->bias_row) r = _mm512_add_ps(r, _mm512_set1_ps(e->bias_row[i]));
        if (has_bc) r = _mm512_add_ps(r, bc[v]);
        r = act(r);
        if (full)
          _mm512_storeu_ps(cr + 16 * v, r);
        else
          _mm512_mask_storeu_ps(cr + 16 * v, mk[v], r);
      }
    }
  } else {
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      float* cr = c + i * ldc;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        if (full) {
          _mm512_storeu_ps(cr + 16 * v, _mm512_fmadd_ps(acc[i][v], va, _mm512_loadu_ps(cr + 16 * v)));
        } else {
          const __m512 old = _mm512_maskz_loadu_ps(mk[v], cr + 16 * v);
          _mm512_mask_storeu_ps(cr + 16 * v, mk[v], _mm512_fmadd_ps(acc[i][v], va, old));
        }
      }
    }
  }
}

// In-register 16×16 transpose: out[j] lane i = in[i] lane j.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m512 u[16];
  for (int q = 0; q < 4; ++q) {  // rows 4q..4q+3
    const __m512d t0 = _mm512_castps_pd(t[4 * q]), t1 = _mm512_castps_pd(t[4 * q + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * q + 2]), t3 = _mm512_castps_pd(t[4 * q + 3]);
    u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));  // cols 0,4,8,12
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));  // cols 1,5,9,13
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));  // cols 2,6,10,14
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));  // cols 3,7,11,15
  }
  for (int s = 0; s < 4; ++s) {  // column residue s: u[s], u[4+s], u[8+s], u[12+s]
    const __m512 v0 = _mm512_shuffle_f32x4(u[s], u[4 + s], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0x88);
    const __m512 w0 = _mm512_shuffle_f32x4(u[s], u[4 + s], 0xDD);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0xDD);
    r[s] = _mm512_shuffle_f32x4(v0, v1, 0x88);
    r[s + 8] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
    r[s + 4] = _mm512_shuffle_f32x4(w0, w1, 0x88);
    r[s + 12] = _mm512_shuffle_f32x4(w0, w1, 0xDD);
  }
}

// A micro-kernel family F (F::template tile<R, NV>: R rows, NV zmm columns) dispatched by the edge of the
// tile: m rows (1..14) and n columns (≤ 16: one zmm, else two), so no FMAs are spent on padding.
template <class F>
void micro_dispatch(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, const MicroEpi* e) {
  using Fn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, int, const MicroEpi*);
#define FD_ROW(R) {&F::template tile<R, 1>, &F::template tile<R, 2>}
  static constexpr Fn kTable[15][2] = {{nullptr, nullptr}, FD_ROW(1),  FD_ROW(2),  FD_ROW(3),  FD_ROW(4),
                                       FD_ROW(5),          FD_ROW(6),  FD_ROW(7),  FD_ROW(8),  FD_ROW(9),
                                       FD_ROW(10),         FD_ROW(11), FD_ROW(12), FD_ROW(13), FD_ROW(14)};
#undef FD_ROW
  kTable[m][n > 16 ? 1 : 0](kc, a, b, c, ldc, m, n, e);
}

}  // namespace
}  // namespace fd::kernels::avx512
