// Deterministic warp / block reductions and the "row team" used by the norm,
// softmax, embedding and loss kernels. Every reduction is a fixed butterfly (or
// tree) for a given block size, so results never depend on timing; butterfly
// sums give bit-identical results in every lane (a + b == b + a in IEEE).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace fd::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// NaN-ignoring max (fmaxf); callers that need NaN propagation get it from a later sum.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every
// thread must call it and every thread gets the result. smem: 32 slots of T.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // smem may still be read by the previous call
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  T r = lane < warps ? smem[lane] : T(0);
  return warp_sum(r);
}

__device__ __forceinline__ float block_max(float v, float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float r = lane < warps ? smem[lane] : -INFINITY;
  return warp_max(r);
}

// A team of kTeam threads owns one row: a warp (kTeam = 32, several rows per
// block, no __syncthreads) or the whole block (kTeam = blockDim.x = kBlock).
template <int kTeam, int kBlock>
struct RowTeam {
  static_assert(kTeam == 32 || kTeam == kBlock, "a row team is a warp or the whole block");
  static_assert(kBlock % 32 == 0 && kBlock <= 1024, "block size");
  static constexpr int kRows = kBlock / kTeam;  // rows per block
  __device__ static int lane() { return threadIdx.x % kTeam; }
  __device__ static int64_t row() { return int64_t(blockIdx.x) * kRows + threadIdx.x / kTeam; }
  // Grid size for M rows (exact: a block-wide team never sees row >= M).
  static unsigned blocks(int64_t M) { return unsigned((M + kRows - 1) / kRows); }
  template <typename T>
  __device__ static T sum(T v, T* smem) {
    if constexpr (kTeam == 32) return warp_sum(v);
    else return block_sum(v, smem);
  }
  __device__ static float max(float v, float* smem) {
    if constexpr (kTeam == 32) return warp_max(v);
    else return block_max(v, smem);
  }
};

}  // namespace fd::cuda
