// Shared register-tiled block product of the SIMD attention kernels: textually
// included by avx2/attention_avx2.cc and avx512/attention_avx512.cc (each compiled
// with its own -m flags) after their ISA layer and before their column dispatch
// `gemm`, which picks NV and MASK per chunk of columns and calls gemm_nv below.
//
// The including file must, before the #include:
//   - include <immintrin.h> and <cstdint> and open an anonymous namespace
//     (everything here must keep internal linkage: the two compilations may never
//     share an ODR-visible symbol);
//   - define W (floats per vector), V (float vector), LM (lane mask of masked
//     loads/stores), vzero vload vstore vfma vmul, vbcast(p) (broadcast *p),
//     vloadm(p, lm) (masked load, other lanes 0), vstorem(p, lm, v) (masked store),
//     the macro FD_ATTN_LOAD_ACC(p, lm, partial) (load of a C / cs vector: only the
//     lanes of lm when partial) and rows_for<NV>() (tile rows for NV column vectors).
// It also defines min64, for the column dispatch and simd/attention_kernels.inl.

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// One register tile: R rows × NV vectors of columns; with MASK the last column
// vector is partial (lanes selected by lm).
//   ACC=false: C = Σ_t A(r,t)·Y[t]          ACC=true: C = C (· cs[r] if CS) + Σ_t ...
template <int R, int NV, bool ACC, bool CS, bool MASK>
static inline void tile(int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y, int64_t ldy, float* C,
                        int64_t ldc, LM lm, const float* cs) {
  V acc[R][NV];
  if constexpr (ACC) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = FD_ATTN_LOAD_ACC(C + r * ldc + v * W, lm, MASK && v == NV - 1);
        if constexpr (CS) acc[r][v] = vmul(acc[r][v], vbcast(cs + r));
      }
    }
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = vzero();
  }
  const float* a = A;
  const float* y = Y;
  for (int64_t t = 0; t < T; ++t, a += ats, y += ldy) {
    V yv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) yv[v] = (MASK && v == NV - 1) ? vloadm(y + v * W, lm) : vload(y + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const V b = vbcast(a + r * ars);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = vfma(b, yv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (MASK && v == NV - 1)
        vstorem(C + r * ldc + v * W, lm, acc[r][v]);
      else
        vstore(C + r * ldc + v * W, acc[r][v]);
    }
}

template <int NV, bool ACC, bool CS, bool MASK, int K>
static inline void tail_rows(int64_t rem, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y,
                             int64_t ldy, float* C, int64_t ldc, LM lm, const float* cs) {
  if constexpr (K >= 1) {
    if (rem == K)
      tile<K, NV, ACC, CS, MASK>(T, A, ars, ats, Y, ldy, C, ldc, lm, cs);
    else
      tail_rows<NV, ACC, CS, MASK, K - 1>(rem, T, A, ars, ats, Y, ldy, C, ldc, lm, cs);
  }
}

// rows × (NV vectors of columns), in tiles of rows_for<NV>() rows and then one tile of the rest.
template <int NV, bool ACC, bool CS, bool MASK>
static void gemm_nv(int64_t rows, int64_t T, const float* A, int64_t ars, int64_t ats, const float* Y, int64_t ldy,
                    float* C, int64_t ldc, LM lm, const float* cs) {
  constexpr int R = rows_for<NV>();
  int64_t r = 0;
  for (; r + R <= rows; r += R)
    tile<R, NV, ACC, CS, MASK>(T, A + r * ars, ars, ats, Y, ldy, C + r * ldc, ldc, lm, CS ? cs + r : cs);
  if (r < rows)
    tail_rows<NV, ACC, CS, MASK, R - 1>(rows - r, T, A + r * ars, ars, ats, Y, ldy, C + r * ldc, ldc, lm,
                                        CS ? cs + r : cs);
}
