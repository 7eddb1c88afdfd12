// The elementwise twins of kernels/vector.h: one kernel instantiation per op (the op
// is a template argument, so no switch runs per element), float4 memory access
// through map_contiguous (map.cuh), and sum_squares as a two-stage, fixed-shape
// double reduction.
#include "cuda/elementwise_math.cuh"
#include "cuda/map.cuh"
#include "cuda/reduce.cuh"
#include "cuda/vector.h"

namespace fd::cuda {

void unary(Unary op, int64_t n, const float* x, float* y, float a, float b) {
  with_unary(op, [&](auto k) {
    map_contiguous<1>(kernels::unary_name(op), n, Operands<1>{{x}, {1}}, y, UnaryFwd<decltype(k)::value>{a, b});
  });
}

void unary_backward(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a,
                    float b) {
  with_unary(op, [&](auto k) {
    constexpr Unary kOp = decltype(k)::value;
    const float* xs = backward_reads_x<kOp>() ? x : nullptr;  // null: not read (a constant 0)
    const float* ys = backward_reads_y<kOp>() ? y : nullptr;
    map_contiguous<3>(kernels::unary_name(op), n, Operands<3>{{xs, ys, gy}, {1, 1, 1}}, gx, UnaryBwd<kOp>{a, b});
  });
}

void binary(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out) {
  with_binary(op, [&](auto k) {
    map_contiguous<2>(kernels::binary_name(op), n, Operands<2>{{a, b}, {sa ? 1 : 0, sb ? 1 : 0}}, out,
                      BinaryFwd<decltype(k)::value>{});
  });
}

namespace {

constexpr int kThreads = 256;
constexpr int64_t kPerBlock = 8192;   // elements per stage-1 block (at least)
constexpr int64_t kMaxBlocks = 1024;  // stage-1 partials (a function of n only: reproducible)

// Stage 1: partial[b] = Σ over the grid-stride slice of block b of x², in double.
__global__ void sum_squares_partial(int64_t n, const float* x, double* partial) {
  __shared__ double smem[32];
  double acc = 0;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    const double v = x[i];
    acc += v * v;
  }
  acc = block_reduce(acc, AddOp{}, 0.0, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Stage 2 (one block): *out = Σ partial.
__global__ void sum_partials(int64_t m, const double* partial, double* out) {
  __shared__ double smem[32];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) acc += partial[i];
  acc = block_reduce(acc, AddOp{}, 0.0, smem);
  if (threadIdx.x == 0) *out = acc;
}

}  // namespace

double sum_squares(int64_t n, const float* x) {
  if (n <= 0) return 0.0;
  int64_t blocks = (n + kPerBlock - 1) / kPerBlock;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  Scratch scratch(size_t(blocks + 1) * sizeof(double), "sum_squares");
  double* partial = scratch.get<double>();
  sum_squares_partial<<<unsigned(blocks), kThreads, 0, stream()>>>(n, x, partial);
  check_launch("sum_squares");
  sum_partials<<<1, kThreads, 0, stream()>>>(blocks, partial, partial + blocks);
  check_launch("sum_squares");
  double result = 0;
  check(cudaMemcpyAsync(&result, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream()), "sum_squares");
  check(cudaStreamSynchronize(stream()), "sum_squares");
  return result;
}

}  // namespace fd::cuda
