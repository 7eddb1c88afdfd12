// Elementwise launch machinery: out[i] = f(v) where v[k] is operand k's value for
// output element i.
//  - map_contiguous: operand k is read at i·s[k], s[k] ∈ {0, 1} (0: a broadcast
//    scalar; a null pointer reads as 0). float4 loads/stores when every streamed
//    pointer is 16-byte aligned (4 elements per thread per step), scalar tail.
//  - map_strided: operand k is read at Σ_d c_d(i)·strides[k][d], c(i) the row-major
//    coordinates of i in `dims` (broadcast: stride 0; permute: permuted strides).
//    32-bit index math whenever every offset fits (integer division is the cost).
// Both use grid-stride loops, so any n works with a capped grid.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda/common.cuh"

namespace fd::cuda {

// Most dims a strided map handles after merging (ops merge compatible dims first).
constexpr int kMaxDims = 12;

template <int N>
struct Operands {
  const float* p[N];
  int64_t s[N];
};

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <int N, class F>
__global__ void map_contiguous_kernel(int64_t n, Operands<N> in, float* out, F f, bool vec4) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  int64_t done = 0;
  if (vec4) {
    const int64_t quads = n / 4;
    for (int64_t q = first; q < quads; q += step) {
      float v[N][4];
#pragma unroll
      for (int k = 0; k < N; ++k) {
        if (in.s[k]) {
          const float4 t = reinterpret_cast<const float4*>(in.p[k])[q];
          v[k][0] = t.x, v[k][1] = t.y, v[k][2] = t.z, v[k][3] = t.w;
        } else {
          const float t = in.p[k] ? in.p[k][0] : 0.f;
          v[k][0] = v[k][1] = v[k][2] = v[k][3] = t;
        }
      }
      float r[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float a[N];
#pragma unroll
        for (int k = 0; k < N; ++k) a[k] = v[k][j];
        r[j] = f(a);
      }
      reinterpret_cast<float4*>(out)[q] = make_float4(r[0], r[1], r[2], r[3]);
    }
    done = quads * 4;
  }
  for (int64_t i = done + first; i < n; i += step) {
    float a[N];
#pragma unroll
    for (int k = 0; k < N; ++k) a[k] = in.p[k] ? in.p[k][i * in.s[k]] : 0.f;
    out[i] = f(a);
  }
}

template <int N, class F>
void map_contiguous(const char* op, int64_t n, Operands<N> in, float* out, F f) {
  if (n <= 0) return;
  bool vec4 = aligned16(out) && n >= 4;
  for (int k = 0; k < N; ++k) {
    in.s[k] = in.s[k] && in.p[k] ? 1 : 0;
    if (in.s[k]) vec4 = vec4 && aligned16(in.p[k]);
  }
  map_contiguous_kernel<N, F><<<grid_for(vec4 ? (n + 3) / 4 : n), 256, 0, stream()>>>(n, in, out, f, vec4);
  check_launch(op);
}

// dims/strides stored innermost first (index 0 varies fastest).
template <int N>
struct StridedOperands {
  int ndim;
  int64_t dims[kMaxDims];
  int64_t strides[N][kMaxDims];
  const float* p[N];
};

template <int N, class I, class F>
__global__ void map_strided_kernel(I n, StridedOperands<N> in, float* out, F f) {
  const I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < n; i += step) {
    I rem = i;
    I off[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d >= in.ndim) break;
      const I dim = I(in.dims[d]);
      const I c = d + 1 == in.ndim ? rem : rem % dim;  // the outermost coordinate needs no modulo
      rem /= dim;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += c * I(in.strides[k][d]);
    }
    float a[N];
#pragma unroll
    for (int k = 0; k < N; ++k) a[k] = in.p[k][off[k]];
    out[i] = f(a);
  }
}

// dims: output shape (outermost first, any size-1 dims allowed); strides[k]: operand k's
// element stride per dim (0 where it is broadcast). Throws ERR_SHAPE past kMaxDims dims.
template <int N, class F>
void map_strided(const char* op, const std::vector<int64_t>& dims, const std::vector<std::vector<int64_t>>& strides,
                 const float* const (&ptrs)[N], float* out, F f) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  if (n <= 0) return;
  StridedOperands<N> in{};
  int64_t max_off[N] = {};
  // Drop size-1 dims (coordinate 0), then store innermost first.
  for (int64_t d = int64_t(dims.size()) - 1; d >= 0; --d) {
    if (dims[d] == 1) continue;
    if (in.ndim == kMaxDims)
      fail(ErrorCode::Shape, op, ": more than ", kMaxDims, " non-mergeable dimensions are not supported on CUDA (",
           shape_str(dims), ")");
    in.dims[in.ndim] = dims[d];
    for (int k = 0; k < N; ++k) {
      in.strides[k][in.ndim] = strides[k][d];
      max_off[k] += (dims[d] - 1) * strides[k][d];
    }
    ++in.ndim;
  }
  bool small = n < (int64_t(1) << 31);
  for (int k = 0; k < N; ++k) {
    in.p[k] = ptrs[k];
    small = small && max_off[k] < (int64_t(1) << 31);
  }
  if (small)
    map_strided_kernel<N, uint32_t, F><<<grid_for(n), 256, 0, stream()>>>(uint32_t(n), in, out, f);
  else
    map_strided_kernel<N, int64_t, F><<<grid_for(n), 256, 0, stream()>>>(n, in, out, f);
  check_launch(op);
}

}  // namespace fd::cuda
