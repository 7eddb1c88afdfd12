// Broadcast binary / where / strided copy through map_strided (map.cuh): one thread
// per output element, coordinates from the merged dims (32-bit division when every
// offset fits). The ops send same-shape and scalar-broadcast cases to the contiguous
// float4 kernels of vector.cu instead.
#include "cuda/elementwise.h"
#include "cuda/elementwise_math.cuh"
#include "cuda/map.cuh"

namespace fd::cuda {
namespace {

struct WhereFn {
  __device__ float operator()(const float* v) const { return v[0] != 0.f ? v[1] : v[2]; }
};
struct MulAddFn {
  __device__ float operator()(const float* v) const { return fmaf(v[0], v[1], v[2]); }
};
struct CopyFn {
  __device__ float operator()(const float* v) const { return v[0]; }
};
struct EqualFn {
  __device__ float operator()(const float* v) const { return v[0] == v[1] ? 1.f : 0.f; }
};
struct ShareFn {
  bool is_max;
  __device__ float operator()(const float* v) const {
    const float d = v[0];
    return d == 0.f ? 0.5f : ((d > 0.f) == is_max ? 1.f : 0.f);
  }
};

}  // namespace

void strided_binary(kernels::Binary op, const std::vector<int64_t>& dims, const Strides& strides, const float* a,
                    const float* b, float* out) {
  const float* const ptrs[2] = {a, b};
  with_binary(op, [&](auto k) {
    map_strided<2>(kernels::binary_name(op), dims, strides, ptrs, out, BinaryFwd<decltype(k)::value>{});
  });
}

void strided_where(const std::vector<int64_t>& dims, const Strides& strides, const float* cond, const float* a,
                   const float* b, float* out) {
  const float* const ptrs[3] = {cond, a, b};
  map_strided<3>("where", dims, strides, ptrs, out, WhereFn{});
}

void strided_mul_add(const std::vector<int64_t>& dims, const Strides& strides, const float* x, const float* y,
                     const float* z, float* out) {
  const float* const ptrs[3] = {x, y, z};
  map_strided<3>("mul_add", dims, strides, ptrs, out, MulAddFn{});
}

void strided_copy(const std::vector<int64_t>& dims, const Strides& strides, const float* x, float* out) {
  const float* const ptrs[1] = {x};
  map_strided<1>("copy", dims, strides, ptrs, out, CopyFn{});
}

void equal_mask(int64_t n, const float* a, const float* b, float* out) {
  map_contiguous<2>("max_backward", n, Operands<2>{{a, b}, {1, 1}}, out, EqualFn{});
}

void minmax_share(int64_t n, const float* d, float* out, bool is_max) {
  map_contiguous<1>(is_max ? "maximum_backward" : "minimum_backward", n, Operands<1>{{d}, {1}}, out, ShareFn{is_max});
}

}  // namespace fd::cuda
