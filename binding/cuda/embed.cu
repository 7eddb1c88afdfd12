// Timestep / label embeddings, the Gaussian Fourier projection and dropout.
// Small host tables (frequencies, labels) travel as kernel arguments in chunks,
// so nothing is staged through device memory and the host never waits.
#include <algorithm>
#include <numeric>
#include <vector>

#include "cuda/block_reduce.cuh"
#include "cuda/common.cuh"
#include "cuda/embed.h"
#include "cuda/rng.h"

namespace fd::cuda {
namespace {

constexpr double kPi = 3.14159265358979323846;

// float(sin(x)) / float(cos(x)) rounded once from double: what a correctly rounded sinf gives.
__device__ __forceinline__ void sincos_exact(float x, float* s, float* c) {
  double sd, cd;
  sincos(double(x), &sd, &cd);
  *s = float(sd), *c = float(cd);
}

// ---------------------------------------------------------------- timestep embedding
constexpr int kFreqChunk = 512;
struct FreqChunk {
  int64_t i0;
  int count;
  float f[kFreqChunk];
};

__global__ void temb_forward(int64_t B, int64_t dim, int64_t half, bool flip, float scale,
                             const __grid_constant__ FreqChunk fc, const float* __restrict__ t, float* __restrict__ y) {
  const int64_t n = B * fc.count;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / fc.count, k = e - b * fc.count, i = fc.i0 + k;
    float s, c;
    sincos_exact(__fmul_rn(scale, __fmul_rn(t[b], fc.f[k])), &s, &c);
    float* row = y + b * dim;
    row[flip ? half + i : i] = s;
    row[flip ? i : half + i] = c;
    if (i == 0 && (dim & 1)) row[dim - 1] = 0.f;
  }
}

// One block per sample: this chunk's share of gt[b], as a double partial.
__global__ void __launch_bounds__(128)
    temb_backward_partial(int64_t dim, int64_t half, bool flip, float scale, const __grid_constant__ FreqChunk fc,
                          const float* __restrict__ t, const float* __restrict__ gy, int64_t chunks, int64_t chunk,
                          double* __restrict__ part) {
  __shared__ double red[32];
  const int64_t b = blockIdx.x;
  const float tb = t[b];
  const float* g = gy + b * dim;
  double acc = 0.0;
  for (int k = threadIdx.x; k < fc.count; k += blockDim.x) {
    const int64_t i = fc.i0 + k;
    const float f = __fmul_rn(fc.f[k], scale);
    float s, c;
    sincos_exact(__fmul_rn(tb, f), &s, &c);
    acc += double(g[flip ? half + i : i]) * double(f) * double(c);
    acc -= double(g[flip ? i : half + i]) * double(f) * double(s);
  }
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) part[b * chunks + chunk] = acc;
}

// out[b] = float(Σ_k part[b·chunks + k]) in order of k.
__global__ void sum_partials(int64_t B, int64_t chunks, const double* __restrict__ part, float* __restrict__ out) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int64_t k = 0; k < chunks; ++k) s += part[b * chunks + k];
    out[b] = float(s);
  }
}

template <class F>
void for_each_freq_chunk(int64_t half, const float* freq, F&& launch) {
  for (int64_t i0 = 0, k = 0; i0 < half; i0 += kFreqChunk, ++k) {
    FreqChunk fc;
    fc.i0 = i0;
    fc.count = int(std::min<int64_t>(kFreqChunk, half - i0));
    std::copy(freq + i0, freq + i0 + fc.count, fc.f);
    launch(fc, k);
  }
}

// ---------------------------------------------------------------- label embedding
constexpr int kLabelChunk = 512;
struct LabelChunk {
  int64_t b0;
  int count;
  int32_t label[kLabelChunk];
};

__global__ void embed_gather(int64_t D, const __grid_constant__ LabelChunk lc, const float* __restrict__ w,
                             float* __restrict__ y) {
  const int64_t n = lc.count * D;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = e / D, d = e - k * D;
    y[(lc.b0 + k) * D + d] = w[int64_t(lc.label[k]) * D + d];
  }
}

// The labels of one chunk grouped by class, rows in increasing order within a class.
constexpr int kRunChunk = 256;
struct ClassRuns {
  int64_t b0;
  int classes;
  int32_t cls[kRunChunk];
  int32_t start[kRunChunk + 1];  // class u's rows: row[start[u] .. start[u + 1])
  int32_t row[kRunChunk];        // relative to b0
};

// gw[cls] += gy[rows of cls] one row at a time, in row order (the CPU's float order).
__global__ void embed_scatter(int64_t D, const __grid_constant__ ClassRuns runs, const float* __restrict__ gy,
                              float* __restrict__ gw) {
  const int u = blockIdx.y;
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < D; d += int64_t(gridDim.x) * blockDim.x) {
    float* dst = gw + int64_t(runs.cls[u]) * D + d;
    float acc = *dst;
    for (int k = runs.start[u]; k < runs.start[u + 1]; ++k) acc += gy[(runs.b0 + runs.row[k]) * D + d];
    *dst = acc;
  }
}

// ---------------------------------------------------------------- Fourier projection
__device__ __forceinline__ float fourier_arg(float x, float w) {
  return __fmul_rn(__fmul_rn(__fmul_rn(x, w), 2.f), float(kPi));  // ((x·W)·2)·π, rounded like torch
}

__global__ void fourier_forward(int64_t B, int64_t C, const float* __restrict__ x, const float* __restrict__ w,
                                float* __restrict__ y) {
  const int64_t n = B * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / C, i = e - b * C;
    float s, c;
    sincos_exact(fourier_arg(x[b], w[i]), &s, &c);
    y[b * 2 * C + i] = s;
    y[b * 2 * C + C + i] = c;
  }
}

__global__ void __launch_bounds__(128)
    fourier_backward(int64_t C, const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ gy,
                     float* __restrict__ gx) {
  __shared__ double red[32];
  const int64_t b = blockIdx.x;
  const double two_pi = double(float(2.0 * kPi));
  const float* g = gy + b * 2 * C;
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    float s, c;
    sincos_exact(fourier_arg(x[b], w[i]), &s, &c);
    const double d = double(w[i]) * two_pi;
    acc += double(g[i]) * d * double(c);
    acc -= double(g[C + i]) * d * double(s);
  }
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) gx[b] = float(acc);
}

// ---------------------------------------------------------------- dropout
__global__ void dropout_apply(int64_t n, const float* __restrict__ x, float* __restrict__ y, float keep_scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = y[i] != 0.f ? x[i] * keep_scale : 0.f;  // y holds the keep mask
}

}  // namespace

void timestep_embedding_forward(int64_t B, int64_t dim, int64_t half, bool flip, float scale, const float* freq,
                                const float* t, float* y) {
  if (B <= 0 || half <= 0) return;  // the op checks dim >= 2, so half >= 1
  for_each_freq_chunk(half, freq, [&](const FreqChunk& fc, int64_t) {
    temb_forward<<<grid_for(B * fc.count), 256, 0, stream()>>>(B, dim, half, flip, scale, fc, t, y);
    check_launch("timestep_embedding");
  });
}

void timestep_embedding_backward(int64_t B, int64_t dim, int64_t half, bool flip, float scale, const float* freq,
                                 const float* t, const float* gy, float* gt) {
  if (B <= 0 || half <= 0) return;
  const int64_t chunks = (half + kFreqChunk - 1) / kFreqChunk;
  Scratch part(size_t(B * chunks) * sizeof(double), "timestep_embedding_backward");
  for_each_freq_chunk(half, freq, [&](const FreqChunk& fc, int64_t k) {
    temb_backward_partial<<<unsigned(B), 128, 0, stream()>>>(dim, half, flip, scale, fc, t, gy, chunks, k,
                                                              part.get<double>());
    check_launch("timestep_embedding_backward");
  });
  sum_partials<<<grid_for(B), 256, 0, stream()>>>(B, chunks, part.get<double>(), gt);
  check_launch("timestep_embedding_backward");
}

void embedding_forward(const int32_t* labels, int64_t B, int64_t D, const float* weight, float* y) {
  if (B <= 0 || D <= 0) return;
  for (int64_t b0 = 0; b0 < B; b0 += kLabelChunk) {
    LabelChunk lc;
    lc.b0 = b0;
    lc.count = int(std::min<int64_t>(kLabelChunk, B - b0));
    std::copy(labels + b0, labels + b0 + lc.count, lc.label);
    embed_gather<<<grid_for(lc.count * D), 256, 0, stream()>>>(D, lc, weight, y);
    check_launch("embedding");
  }
}

void embedding_backward(const int32_t* labels, int64_t B, int64_t V, int64_t D, const float* gy, float* gw) {
  if (V <= 0 || D <= 0) return;
  fill(gw, V * D, 0.f);
  for (int64_t b0 = 0; b0 < B; b0 += kRunChunk) {
    const int count = int(std::min<int64_t>(kRunChunk, B - b0));
    std::vector<int32_t> order(count);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return labels[b0 + a] < labels[b0 + b]; });
    ClassRuns runs;
    runs.b0 = b0;
    runs.classes = 0;
    for (int k = 0; k < count; ++k) {
      const int32_t c = labels[b0 + order[k]];
      if (runs.classes == 0 || runs.cls[runs.classes - 1] != c) {
        runs.cls[runs.classes] = c;
        runs.start[runs.classes++] = k;
      }
      runs.row[k] = order[k];
    }
    runs.start[runs.classes] = count;
    const dim3 grid(unsigned(std::min<int64_t>((D + 255) / 256, 65535)), unsigned(runs.classes));
    embed_scatter<<<grid, 256, 0, stream()>>>(D, runs, gy, gw);
    check_launch("embedding_backward");
  }
}

void gaussian_fourier_forward(int64_t B, int64_t C, const float* x, const float* w, float* y) {
  if (B <= 0 || C <= 0) return;
  fourier_forward<<<grid_for(B * C), 256, 0, stream()>>>(B, C, x, w, y);
  check_launch("gaussian_fourier_projection");
}

void gaussian_fourier_backward(int64_t B, int64_t C, const float* x, const float* w, const float* gy, float* gx) {
  if (B <= 0) return;
  fourier_backward<<<unsigned(B), 128, 0, stream()>>>(C, x, w, gy, gx);
  check_launch("gaussian_fourier_projection_backward");
}

void dropout_forward(int64_t n, const float* x, float* y, float p, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  fill_dropout_mask(y, n, seed, offset, p);
  dropout_apply<<<grid_for(n), 256, 0, stream()>>>(n, x, y, 1.f / (1.f - p));
  check_launch("dropout");
}

}  // namespace fd::cuda
