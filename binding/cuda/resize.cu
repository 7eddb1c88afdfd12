// Separable resampling kernels (resize.h). Forward: one thread per output pixel,
// y[oy, ox] = Σ_a wy(oy, a) · (Σ_b wx(ox, b) · x[iy(oy, a), ix(ox, b)]), the CPU plan's
// summation order. Backward: one thread per input pixel gathers the outputs that read
// it, gx[iy, ix] = Σ_{(oy, wy) ∋ iy} wy · Σ_{(ox, wx) ∋ ix} wx · gy[oy, ox], so every
// element is written exactly once and no atomics are needed.
#include <algorithm>

#include "common.cuh"
#include "resize.h"

namespace fd::cuda {
namespace {

// The axis as the kernels see it (32-bit extents; the host checks they fit).
struct Axis {
  int in, out, per, step;
  float weight;
  const int32_t* index;
  const float* weights;
  const int32_t* first;
  const int32_t* tap_out;
  const float* tap_weight;
};

Axis to_device(const ResampleAxis& a, const ResampleAxis& other) {
  if (a.kind != other.kind) check(cudaErrorInvalidValue, "resample: both axes must be of one kind");
  if (a.in >= (int64_t(1) << 31) || a.out >= (int64_t(1) << 31) || a.per >= (int64_t(1) << 31))
    check(cudaErrorInvalidValue, "resample: an image side of 2^31 or more pixels");
  return Axis{int(a.in), int(a.out), int(a.per), int(a.step), a.weight, a.index, a.weights, a.first, a.tap_out,
              a.tap_weight};
}

// Tap k of output o: input index i and weight w.
template <int K>
__device__ __forceinline__ void tap(const Axis& a, int o, int k, int& i, float& w) {
  if (K == ResampleAxis::Nearest) {
    i = o / a.step, w = a.weight;
  } else if (K == ResampleAxis::Pool) {
    i = o * a.step + k, w = a.weight;
  } else {
    const int64_t t = int64_t(o) * a.per + k;
    i = __ldg(a.index + t), w = __ldg(a.weights + t);
  }
}

// The taps that read input i, as a range [begin, end) of entries for inverse_tap.
template <int K>
__device__ __forceinline__ void inverse_range(const Axis& a, int i, int& begin, int& end) {
  if (K == ResampleAxis::Nearest) {  // outputs i·step .. i·step + step − 1
    begin = i * a.step, end = begin + a.step;
  } else if (K == ResampleAxis::Pool) {  // o·step ≤ i < o·step + per
    begin = i >= a.per ? (i - a.per + a.step) / a.step : 0;  // ⌈(i − per + 1) / step⌉
    end = min(a.out - 1, i / a.step) + 1;
  } else {
    begin = __ldg(a.first + i), end = __ldg(a.first + i + 1);
  }
}

// Entry j of inverse_range: the output o and the tap's weight w.
template <int K>
__device__ __forceinline__ void inverse_tap(const Axis& a, int j, int& o, float& w) {
  if (K == ResampleAxis::Table) {
    o = __ldg(a.tap_out + j), w = __ldg(a.tap_weight + j);
  } else {
    o = j, w = a.weight;
  }
}


// rows = planes · ay.out
template <int K>
__global__ void resample_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t rows, Axis ay,
                                        Axis ax) {
  FD_FOR_ROWS(r, rows) {
    const int oy = int(r % ay.out);
    const float* src = x + (r / ay.out) * int64_t(ay.in) * ax.in;
    float* dst = y + r * ax.out;
    for (int ox = threadIdx.x; ox < ax.out; ox += blockDim.x) {
      float acc = 0.f;
      for (int a = 0; a < ay.per; ++a) {
        int iy;
        float wy;
        tap<K>(ay, oy, a, iy, wy);
        const float* row = src + int64_t(iy) * ax.in;
        float sum = 0.f;
        for (int b = 0; b < ax.per; ++b) {
          int ix;
          float wx;
          tap<K>(ax, ox, b, ix, wx);
          sum += wx * __ldg(row + ix);
        }
        acc += wy * sum;
      }
      dst[ox] = acc;
    }
  }
}

// rows = planes · ay.in
template <int K>
__global__ void resample_backward_kernel(const float* __restrict__ gy, float* __restrict__ gx, int64_t rows, Axis ay,
                                         Axis ax) {
  FD_FOR_ROWS(r, rows) {
    const int iy = int(r % ay.in);
    const float* src = gy + (r / ay.in) * int64_t(ay.out) * ax.out;
    float* dst = gx + r * ax.in;
    int y0, y1;
    inverse_range<K>(ay, iy, y0, y1);
    for (int ix = threadIdx.x; ix < ax.in; ix += blockDim.x) {
      int x0, x1;
      inverse_range<K>(ax, ix, x0, x1);
      float acc = 0.f;
      for (int j = y0; j < y1; ++j) {
        int oy;
        float wy;
        inverse_tap<K>(ay, j, oy, wy);
        const float* row = src + int64_t(oy) * ax.out;
        float sum = 0.f;
        for (int k = x0; k < x1; ++k) {
          int ox;
          float wx;
          inverse_tap<K>(ax, k, ox, wx);
          sum += wx * __ldg(row + ox);
        }
        acc += wy * sum;
      }
      dst[ix] = acc;
    }
  }
}

}  // namespace

void resample_forward(const float* x, float* y, int64_t planes, const ResampleAxis& ay, const ResampleAxis& ax) {
  const int64_t rows = planes * ay.out;
  if (rows == 0 || ax.out == 0) return;
  const Axis dy = to_device(ay, ax), dx = to_device(ax, ay);
  const RowGrid g = row_grid(rows, ax.out);
  cudaStream_t st = stream();
  switch (ay.kind) {
    case ResampleAxis::Nearest:
      resample_forward_kernel<ResampleAxis::Nearest><<<g.grid, g.block, 0, st>>>(x, y, rows, dy, dx);
      break;
    case ResampleAxis::Pool:
      resample_forward_kernel<ResampleAxis::Pool><<<g.grid, g.block, 0, st>>>(x, y, rows, dy, dx);
      break;
    case ResampleAxis::Table:
      resample_forward_kernel<ResampleAxis::Table><<<g.grid, g.block, 0, st>>>(x, y, rows, dy, dx);
      break;
  }
  check_launch("resample");
}

void resample_backward(const float* gy, float* gx, int64_t planes, const ResampleAxis& ay, const ResampleAxis& ax) {
  const int64_t rows = planes * ay.in;
  if (rows == 0 || ax.in == 0) return;
  const Axis dy = to_device(ay, ax), dx = to_device(ax, ay);
  const RowGrid g = row_grid(rows, ax.in);
  cudaStream_t st = stream();
  switch (ay.kind) {
    case ResampleAxis::Nearest:
      resample_backward_kernel<ResampleAxis::Nearest><<<g.grid, g.block, 0, st>>>(gy, gx, rows, dy, dx);
      break;
    case ResampleAxis::Pool:
      resample_backward_kernel<ResampleAxis::Pool><<<g.grid, g.block, 0, st>>>(gy, gx, rows, dy, dx);
      break;
    case ResampleAxis::Table:
      resample_backward_kernel<ResampleAxis::Table><<<g.grid, g.block, 0, st>>>(gy, gx, rows, dy, dx);
      break;
  }
  check_launch("resample_backward");
}

}  // namespace fd::cuda
