// Random fills on the GPU with core/rng.h's exact contract: thread b computes Philox
// block (offset + b) and writes elements 4b..4b+3. Arithmetic that the CPU rounds
// step by step is written with explicit round-to-nearest intrinsics (__fmul_rn,
// __fadd_rn) so nvcc cannot fuse it into an FMA; Box–Muller runs in double like the
// CPU (CUDA's double log/sin/cos are within 1–2 ulp of glibc's, far below float32
// rounding, so the float results match except with vanishing probability).
#include "cuda/common.cuh"
#include "cuda/philox.cuh"
#include "cuda/rng.h"

namespace fd::cuda {
namespace {

__device__ __forceinline__ float unit_open_right(uint32_t w) { return float(w >> 8) * (1.0f / 16777216.0f); }

// Writes the 4 values of block b (fewer at the end), as one float4 when possible.
__device__ __forceinline__ void store4(float* out, int64_t n, int64_t b, const float v[4], bool vec4) {
  const int64_t i = b * 4;
  if (vec4 && i + 3 < n) {
    reinterpret_cast<float4*>(out)[b] = make_float4(v[0], v[1], v[2], v[3]);
    return;
  }
  for (int j = 0; j < 4 && i + j < n; ++j) out[i + j] = v[j];
}

__global__ void uniform_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset, float low, float span,
                               bool vec4) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks; b += int64_t(gridDim.x) * blockDim.x) {
    uint32_t w[4];
    philox4x32_10(seed, offset + uint64_t(b), w);
    float v[4];
    for (int j = 0; j < 4; ++j) v[j] = __fadd_rn(low, __fmul_rn(span, unit_open_right(w[j])));
    store4(out, n, b, v, vec4);
  }
}

__global__ void normal_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev,
                              bool vec4) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks; b += int64_t(gridDim.x) * blockDim.x) {
    uint32_t w[4];
    philox4x32_10(seed, offset + uint64_t(b), w);
    float v[4];
    for (int pair = 0; pair < 2; ++pair) {
      // u1 ∈ (0, 1], u2 ∈ [0, 1); r = √(−2 ln u1); z = (r cos 2πu2, r sin 2πu2)
      const double u1 = __dmul_rn(double(w[2 * pair] >> 8) + 1.0, 1.0 / 16777216.0);
      const double u2 = __dmul_rn(double(w[2 * pair + 1] >> 8), 1.0 / 16777216.0);
      const double r = sqrt(__dmul_rn(-2.0, log(u1)));
      const double angle = __dmul_rn(kTwoPi, u2);
      v[2 * pair] = __fadd_rn(mean, __fmul_rn(stddev, float(__dmul_rn(r, cos(angle)))));
      v[2 * pair + 1] = __fadd_rn(mean, __fmul_rn(stddev, float(__dmul_rn(r, sin(angle)))));
    }
    store4(out, n, b, v, vec4);
  }
}

__global__ void dropout_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset, float p, bool vec4) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks; b += int64_t(gridDim.x) * blockDim.x) {
    uint32_t w[4];
    philox4x32_10(seed, offset + uint64_t(b), w);
    float v[4];
    for (int j = 0; j < 4; ++j) v[j] = unit_open_right(w[j]) >= p ? 1.0f : 0.0f;
    store4(out, n, b, v, vec4);
  }
}

bool aligned16(const float* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset, float low, float high) {
  if (n <= 0) return;
  const float span = high - low;
  uniform_kernel<<<grid_for((n + 3) / 4), 256, 0, stream()>>>(out, n, seed, offset, low, span, aligned16(out));
  check_launch("rand");
}

void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev) {
  if (n <= 0) return;
  normal_kernel<<<grid_for((n + 3) / 4), 256, 0, stream()>>>(out, n, seed, offset, mean, stddev, aligned16(out));
  check_launch("randn");
}

void fill_dropout_mask(float* out, int64_t n, uint64_t seed, uint64_t offset, float p) {
  if (n <= 0) return;
  dropout_kernel<<<grid_for((n + 3) / 4), 256, 0, stream()>>>(out, n, seed, offset, p, aligned16(out));
  check_launch("dropout");
}

}  // namespace fd::cuda
