// Warp and block reductions in a fixed combination order (shuffle trees), so a
// kernel's result depends only on its launch shape, never on timing: no atomics.
#pragma once
#include <cuda_runtime.h>

namespace fd::cuda {

// Combines the 32 lanes' values; the result is valid in lane 0.
template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}

// Combines a 1-D block's values (blockDim.x a multiple of 32); the result is valid in
// thread 0. `smem` holds 32 values. Every thread of the block must call it.
template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T identity, T* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x >> 5) ? smem[lane] : identity;
    v = warp_reduce(v, op);
  }
  __syncthreads();  // smem may be reused by the caller
  return v;
}

struct AddOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

}  // namespace fd::cuda
