// Reductions of x viewed as [outer, R, inner] (the op splits any axis subset into
// such problems), without permuting:
//  - inner == 1: a team (a warp for short rows, the whole 256-thread block for long
//    ones) walks each row with coalesced loads, then a shuffle/shared-memory tree;
//  - inner > 1: a (bx × by) block, bx = min(32, inner rounded up to a power of 2), tx
//    along inner (coalesced: consecutive r rows of a narrow inner are contiguous) and
//    ty along r, combined over ty by a shared-memory tree.
// When the grid would be too small to fill the GPU, R is split into chunks reduced by
// separate blocks into partials [outer, splits, inner], which a second pass reduces
// (no atomics). Split sizes depend only on the shape, so results are reproducible.
#include <algorithm>
#include <climits>

#include "cuda/common.cuh"
#include "cuda/reduce.cuh"
#include "cuda/reduce.h"

namespace fd::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kTargetBlocks = 1024;  // blocks wanted before splitting R (shape-only: reproducible)
constexpr int64_t kMinPerThread = 16;    // values each thread folds before a split pays off
constexpr int64_t kMaxGrid = int64_t(1) << 20;

template <ReduceOp K>
struct Combine {
  __device__ static float identity() {
    if constexpr (K == ReduceOp::Sum) return 0.f;
    else if constexpr (K == ReduceOp::Max) return -INFINITY;
    else return INFINITY;
  }
  // Max/Min: NaN wins (it sticks once present), like the CPU.
  __device__ float operator()(float a, float b) const {
    if constexpr (K == ReduceOp::Sum) return a + b;
    else if constexpr (K == ReduceOp::Max) return (a > b || isnan(a)) ? a : b;
    else return (a < b || isnan(a)) ? a : b;
  }
};

// out[row·splits + s] = reduce over chunk s of row `row` (x [rows, R]).
template <ReduceOp K, int kTeam>
__global__ void __launch_bounds__(kThreads)
    reduce_rows_kernel(const float* x, float* out, int64_t rows, int64_t R, int64_t splits, int64_t chunk) {
  __shared__ float smem[32];
  constexpr int kRowsPerBlock = kThreads / kTeam;
  const Combine<K> op;
  const int lane = threadIdx.x % kTeam, team = threadIdx.x / kTeam;
  const int64_t s = blockIdx.y, r0 = s * chunk, r1 = min(R, r0 + chunk);
  const int64_t groups = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {  // uniform per block: the tree may sync
    const int64_t row = g * kRowsPerBlock + team;
    float acc = Combine<K>::identity();
    if (row < rows) {
      const float* p = x + row * R;
      for (int64_t r = r0 + lane; r < r1; r += kTeam) acc = op(acc, p[r]);
    }
    if constexpr (kTeam == 32) acc = warp_reduce(acc, op);
    else acc = block_reduce(acc, op, Combine<K>::identity(), smem);
    if (lane == 0 && row < rows) out[row * splits + s] = acc;
  }
}

// out[(o·splits + s)·inner + i] = reduce over chunk s of x[o, r, i]; block (bx, by), bx·by = kThreads.
template <ReduceOp K>
__global__ void __launch_bounds__(kThreads) reduce_cols_kernel(const float* x, float* out, int64_t outer, int64_t R,
                                                               int64_t inner, int64_t splits, int64_t chunk) {
  __shared__ float smem[kThreads];
  const Combine<K> op;
  const int bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
  const int64_t s = blockIdx.y, r0 = s * chunk, r1 = min(R, r0 + chunk);
  const int64_t tiles = (inner + bx - 1) / bx;
  for (int64_t t = blockIdx.x; t < outer * tiles; t += gridDim.x) {  // uniform per block
    const int64_t o = t / tiles, i = (t % tiles) * bx + tx;
    float acc = Combine<K>::identity();
    if (i < inner) {
      const float* p = x + o * R * inner + i;
      for (int64_t r = r0 + ty; r < r1; r += by) acc = op(acc, p[r * inner]);
    }
    smem[ty * bx + tx] = acc;
    __syncthreads();
    for (int h = by / 2; h > 0; h >>= 1) {  // by is a power of two
      if (ty < h) smem[ty * bx + tx] = op(smem[ty * bx + tx], smem[(ty + h) * bx + tx]);
      __syncthreads();
    }
    if (ty == 0 && i < inner) out[(o * splits + s) * inner + i] = smem[tx];
    __syncthreads();  // the next tile reuses smem
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits of R so that about kTargetBlocks blocks run, each thread folding ≥ kMinPerThread values.
int64_t choose_splits(int64_t blocks, int64_t R, int64_t threads_per_item) {
  if (blocks >= kTargetBlocks) return 1;
  int64_t s = std::min(ceil_div(R, threads_per_item * kMinPerThread), ceil_div(kTargetBlocks, blocks));
  return std::max<int64_t>(1, std::min<int64_t>(s, 65535));
}

template <ReduceOp K>
void reduce_impl(const float* x, float* out, int64_t outer, int64_t R, int64_t inner) {
  if (outer <= 0 || inner <= 0) return;
  const bool rows = inner == 1;
  const bool wide = R > 512;  // rows: a whole block per row, else a warp
  int bx = 0;  // columns: a power of two ≤ 32 covering inner
  if (!rows)
    for (bx = 1; bx < 32 && bx < inner;) bx <<= 1;
  const int by = rows ? 0 : kThreads / bx;
  const int64_t blocks = rows ? ceil_div(outer, wide ? 1 : kThreads / 32) : outer * ceil_div(inner, bx);
  int64_t splits = rows ? (wide ? choose_splits(blocks, R, kThreads) : 1) : choose_splits(blocks, R, by);
  const int64_t chunk = R > 0 ? ceil_div(R, splits) : 0;
  splits = R > 0 ? ceil_div(R, chunk) : 1;

  auto launch = [&](float* dst) {
    const dim3 grid(unsigned(std::min(blocks, kMaxGrid)), unsigned(splits));
    if (rows && wide) reduce_rows_kernel<K, kThreads><<<grid, kThreads, 0, stream()>>>(x, dst, outer, R, splits, chunk);
    else if (rows) reduce_rows_kernel<K, 32><<<grid, kThreads, 0, stream()>>>(x, dst, outer, R, splits, chunk);
    else reduce_cols_kernel<K><<<grid, dim3(bx, by), 0, stream()>>>(x, dst, outer, R, inner, splits, chunk);
    check_launch("reduce");
  };
  if (splits == 1) {
    launch(out);
    return;
  }
  Scratch partial(size_t(outer * splits * inner) * sizeof(float), "reduce");
  launch(partial.get());
  reduce_impl<K>(partial.get(), out, outer, splits, inner);
}

struct MinIndex {
  __device__ unsigned long long operator()(unsigned long long a, unsigned long long b) const { return a < b ? a : b; }
};

__global__ void first_nonfinite_kernel(const float* x, int64_t n, unsigned long long* first) {
  unsigned long long best = ULLONG_MAX;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step)
    if (!isfinite(x[i])) {
      best = (unsigned long long)i;  // indices ascend: the thread's first hit is its smallest
      break;
    }
  best = warp_reduce(best, MinIndex{});
  // Integer min is order-independent, so the atomic keeps the result deterministic.
  if ((threadIdx.x & 31) == 0 && best != ULLONG_MAX) atomicMin(first, best);
}

}  // namespace

void reduce(ReduceOp op, const float* x, float* out, int64_t outer, int64_t R, int64_t inner) {
  switch (op) {
    case ReduceOp::Sum: return reduce_impl<ReduceOp::Sum>(x, out, outer, R, inner);
    case ReduceOp::Max: return reduce_impl<ReduceOp::Max>(x, out, outer, R, inner);
    case ReduceOp::Min: return reduce_impl<ReduceOp::Min>(x, out, outer, R, inner);
  }
}

int64_t first_nonfinite(const float* x, int64_t n, float* value) {
  if (n <= 0) return -1;
  Scratch scratch(sizeof(unsigned long long), "checkFinite");
  auto* first = scratch.get<unsigned long long>();
  check(cudaMemsetAsync(first, 0xff, sizeof(unsigned long long), stream()), "checkFinite");
  first_nonfinite_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x, n, first);
  check_launch("checkFinite");
  unsigned long long index = 0;
  check(cudaMemcpyAsync(&index, first, sizeof(index), cudaMemcpyDeviceToHost, stream()), "checkFinite");
  check(cudaStreamSynchronize(stream()), "checkFinite");
  if (index == ULLONG_MAX) return -1;
  check(cudaMemcpyAsync(value, x + index, sizeof(float), cudaMemcpyDeviceToHost, stream()), "checkFinite");
  check(cudaStreamSynchronize(stream()), "checkFinite");
  return int64_t(index);
}

}  // namespace fd::cuda
