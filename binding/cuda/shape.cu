// Data movement: strided row copies (concat/slice), permute (a shared-memory tiled
// transpose when the merged permutation swaps the last two dims, else a strided
// gather), constant padding (one gather pass: every output element written once)
// and cross-device copies.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/elementwise.h"
#include "cuda/map.cuh"
#include "cuda/shape.h"

namespace fd::cuda {
namespace {

constexpr int64_t kMaxGrid = int64_t(1) << 20;
constexpr int64_t k31 = int64_t(1) << 31;

// One thread per element of the rows × len box; T = float4 when everything is 4-aligned.
template <class T, class I>
__global__ void copy_rows_kernel(const T* src, I src_stride, T* dst, I dst_stride, I rows, I len) {
  const I n = rows * len, step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += step) {
    const I r = i / len, c = i - r * len;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

template <class T>
void launch_copy_rows(const T* src, int64_t ss, T* dst, int64_t ds, int64_t rows, int64_t len) {
  const int64_t n = rows * len;
  const int64_t extent = (rows - 1) * std::max(ss, ds) + len;
  if (n < k31 && extent < k31)
    copy_rows_kernel<T, int32_t><<<grid_for(n), 256, 0, stream()>>>(src, int32_t(ss), dst, int32_t(ds), int32_t(rows),
                                                                    int32_t(len));
  else
    copy_rows_kernel<T, int64_t><<<grid_for(n), 256, 0, stream()>>>(src, ss, dst, ds, rows, len);
  check_launch("copy");
}

// dst[b][c][r] = src[b][r][c] for src [batch, rows, cols]: 32×32 tiles staged in shared
// memory (33 columns: the transposed reads hit 32 different banks), 32×8 threads, so
// both the global reads and the global writes are coalesced.
constexpr int kTile = 32, kTileRows = 8;
__global__ void transpose_kernel(const float* src, float* dst, int64_t batch, int64_t rows, int64_t cols) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  const int64_t per_batch = tiles_r * tiles_c;
  for (int64_t t = blockIdx.x; t < batch * per_batch; t += gridDim.x) {  // uniform per block
    const int64_t b = t / per_batch, rem = t % per_batch;
    const int64_t r0 = (rem / tiles_c) * kTile, c0 = (rem % tiles_c) * kTile;
    const float* s = src + b * rows * cols;
    float* d = dst + b * rows * cols;
    for (int j = threadIdx.y; j < kTile; j += kTileRows) {
      const int64_t r = r0 + j, c = c0 + threadIdx.x;
      if (r < rows && c < cols) tile[j][threadIdx.x] = s[r * cols + c];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < kTile; j += kTileRows) {
      const int64_t c = c0 + j, r = r0 + threadIdx.x;
      if (c < cols && r < rows) d[c * rows + r] = tile[threadIdx.x][j];
    }
    __syncthreads();  // the next tile reuses `tile`
  }
}

// Padding geometry, innermost dim first.
struct PadGeometry {
  int ndim;
  int64_t out_dims[kMaxDims], in_dims[kMaxDims], before[kMaxDims], in_strides[kMaxDims];
};

template <class I>  // signed: c − before may be negative
__global__ void pad_kernel(I n, PadGeometry g, const float* x, float value, float* y) {
  const I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += step) {
    I rem = i, off = 0;
    bool inside = true;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d >= g.ndim) break;
      const I dim = I(g.out_dims[d]);
      const I c = rem % dim - I(g.before[d]);
      rem /= dim;
      inside = inside && c >= 0 && c < I(g.in_dims[d]);
      off += inside ? c * I(g.in_strides[d]) : I(0);  // bounded by x's size while inside
    }
    y[i] = inside ? x[off] : value;
  }
}

}  // namespace

void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t len) {
  if (rows <= 0 || len <= 0) return;
  const bool vec4 = len % 4 == 0 && src_stride % 4 == 0 && dst_stride % 4 == 0 && aligned16(src) && aligned16(dst);
  if (vec4)
    launch_copy_rows(reinterpret_cast<const float4*>(src), src_stride / 4, reinterpret_cast<float4*>(dst),
                     dst_stride / 4, rows, len / 4);
  else
    launch_copy_rows(src, src_stride, dst, dst_stride, rows, len);
}

void permute(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& perm, float* y) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n <= 0) return;
  // Output dims as runs of input axes: consecutive output dims that are consecutive input
  // axes move together (size-1 axes are dropped: they never change an offset).
  std::vector<std::vector<int64_t>> runs;
  for (int64_t a : perm) {
    if (shape[a] == 1) continue;
    if (!runs.empty()) {
      // The next non-unit input axis after the run's last one.
      int64_t next = runs.back().back() + 1;
      while (next < int64_t(shape.size()) && shape[next] == 1) ++next;
      if (next == a) {
        runs.back().push_back(a);
        continue;
      }
    }
    runs.push_back({a});
  }
  if (runs.size() <= 1) {  // identity up to unit dims
    copy_d2d(y, x, n);
    return;
  }
  // Merged input dims, in input order; q[j] = merged input dim of output dim j.
  std::vector<size_t> order(runs.size());
  for (size_t j = 0; j < runs.size(); ++j) order[j] = j;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return runs[a][0] < runs[b][0]; });
  std::vector<int64_t> in_dims(runs.size()), q(runs.size());
  for (size_t k = 0; k < order.size(); ++k) {
    int64_t size = 1;
    for (int64_t a : runs[order[k]]) size *= shape[a];
    in_dims[k] = size;
    q[order[k]] = int64_t(k);
  }
  const size_t m = runs.size();
  bool last_two_swapped = q[m - 1] == int64_t(m - 2) && q[m - 2] == int64_t(m - 1);
  for (size_t j = 0; j + 2 < m; ++j) last_two_swapped = last_two_swapped && q[j] == int64_t(j);
  if (last_two_swapped) {
    int64_t batch = 1;
    for (size_t j = 0; j + 2 < m; ++j) batch *= in_dims[j];
    const int64_t rows = in_dims[m - 2], cols = in_dims[m - 1];
    const int64_t tiles = batch * ((rows + kTile - 1) / kTile) * ((cols + kTile - 1) / kTile);
    const unsigned grid = unsigned(std::min(tiles, kMaxGrid));
    transpose_kernel<<<grid, dim3(kTile, kTileRows), 0, stream()>>>(x, y, batch, rows, cols);
    check_launch("permute");
    return;
  }
  std::vector<int64_t> in_strides(m), dims(m);
  Strides strides(1, std::vector<int64_t>(m));
  for (int64_t k = int64_t(m) - 1, s = 1; k >= 0; --k) in_strides[k] = s, s *= in_dims[k];
  for (size_t j = 0; j < m; ++j) dims[j] = in_dims[q[j]], strides[0][j] = in_strides[q[j]];
  strided_copy(dims, strides, x, y);
}

void pad(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& before,
         const std::vector<int64_t>& after, float value, float* y) {
  int64_t n = 1, in_n = 1;
  for (size_t d = 0; d < shape.size(); ++d) n *= shape[d] + before[d] + after[d], in_n *= shape[d];
  if (n <= 0) return;
  // Merge each dim into the one inside it while that one is unpadded (innermost first).
  PadGeometry g{};
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    const int64_t out_d = shape[d] + before[d] + after[d];
    if (g.ndim > 0 && g.out_dims[g.ndim - 1] == g.in_dims[g.ndim - 1]) {
      const int64_t k = g.ndim - 1, inner = g.in_dims[k];
      g.before[k] = before[d] * inner;
      g.out_dims[k] = out_d * inner;
      g.in_dims[k] = shape[d] * inner;
      continue;
    }
    if (g.ndim == kMaxDims)
      fail(ErrorCode::Shape, "pad: more than ", kMaxDims, " padded dimensions are not supported on CUDA (",
           shape_str(shape), ")");
    g.out_dims[g.ndim] = out_d, g.in_dims[g.ndim] = shape[d], g.before[g.ndim] = before[d];
    ++g.ndim;
  }
  int64_t s = 1;
  for (int k = 0; k < g.ndim; ++k) g.in_strides[k] = s, s *= g.in_dims[k];
  if (n < k31 && in_n < k31)
    pad_kernel<int32_t><<<grid_for(n), 256, 0, stream()>>>(int32_t(n), g, x, value, y);
  else
    pad_kernel<int64_t><<<grid_for(n), 256, 0, stream()>>>(n, g, x, value, y);
  check_launch("pad");
}

void copy_peer(float* dst, int dst_device, const float* src, int src_device, int64_t n) {
  if (n <= 0) return;
  // The source's producers ran on its own device's stream: wait for them first.
  set_device(src_device);
  synchronize();
  set_device(dst_device);
  check(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, size_t(n) * sizeof(float), stream()), "to");
  // The source block may be reused by its stream as soon as we return.
  synchronize();
}

}  // namespace fd::cuda
