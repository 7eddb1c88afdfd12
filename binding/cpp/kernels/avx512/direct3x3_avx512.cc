// Direct 3×3 convolution strips, AVX-512 (see kernels/direct3x3.h): 16 output channels per
// vector, two vectors per block, one accumulator pair per output pixel of the strip.
#include <immintrin.h>

#include <cstdint>

#include "kernels/direct3x3.h"

namespace fd::kernels::d3::avx512 {
namespace {

template <int ROWS, int PW>
void strip(const float* x, int64_t plane, int64_t wp, int64_t C, const float* wb, float* out) {
  static_assert(ROWS * PW <= kMaxPixels, "28 accumulators at most");
  __m512 acc[ROWS * PW][2];
  for (int p = 0; p < ROWS * PW; ++p) acc[p][0] = acc[p][1] = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; ++c, x += plane, wb += 9 * kBlock) {
    for (int kh = 0; kh < 3; ++kh) {
      const float* row = x + kh * wp;
      for (int kw = 0; kw < 3; ++kw) {
        const float* wt = wb + (kh * 3 + kw) * kBlock;
        const __m512 w0 = _mm512_load_ps(wt), w1 = _mm512_load_ps(wt + 16);
        for (int r = 0; r < ROWS; ++r)
          for (int p = 0; p < PW; ++p) {
            const __m512 xv = _mm512_set1_ps(row[r * wp + p + kw]);
            acc[r * PW + p][0] = _mm512_fmadd_ps(xv, w0, acc[r * PW + p][0]);
            acc[r * PW + p][1] = _mm512_fmadd_ps(xv, w1, acc[r * PW + p][1]);
          }
      }
    }
  }
  for (int p = 0; p < ROWS * PW; ++p) {
    _mm512_storeu_ps(out + p * kBlock, acc[p][0]);
    _mm512_storeu_ps(out + p * kBlock + 16, acc[p][1]);
  }
}

using StripFn = void (*)(const float*, int64_t, int64_t, int64_t, const float*, float*);

constexpr StripFn kOneRow[] = {strip<1, 1>, strip<1, 2>,  strip<1, 3>,  strip<1, 4>,  strip<1, 5>,
                               strip<1, 6>, strip<1, 7>,  strip<1, 8>,  strip<1, 9>,  strip<1, 10>,
                               strip<1, 11>, strip<1, 12>, strip<1, 13>, strip<1, 14>};
constexpr StripFn kTwoRows[] = {strip<2, 1>, strip<2, 2>, strip<2, 3>, strip<2, 4>,
                                strip<2, 5>, strip<2, 6>, strip<2, 7>};

void run_strip(int rows, int pw, const float* x, int64_t plane, int64_t wp, int64_t C, const float* wb, float* out) {
  (rows == 2 ? kTwoRows : kOneRow)[pw - 1](x, plane, wp, C, wb, out);
}

const Kernels kKernels{run_strip};

}  // namespace

const Kernels* kernels() { return &kKernels; }

}  // namespace fd::kernels::d3::avx512
