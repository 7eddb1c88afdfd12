// Broadcasting and strided elementwise kernels behind ops/elementwise.cc (and the
// strided copies of permute/expand). Shapes come merged by the op: `dims` is the
// output shape (outermost first), strides[k] operand k's element stride per dim
// (0 along broadcast dims). Device pointers, current stream.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/vector.h"

namespace fd::cuda {

using Strides = std::vector<std::vector<int64_t>>;

// out = op(a, b) broadcast over dims.
void strided_binary(kernels::Binary op, const std::vector<int64_t>& dims, const Strides& strides, const float* a,
                    const float* b, float* out);
// out = cond ≠ 0 ? a : b broadcast over dims (strides: cond, a, b).
void strided_where(const std::vector<int64_t>& dims, const Strides& strides, const float* cond, const float* a,
                   const float* b, float* out);
// out = x·y + z (fma) broadcast over dims (strides: x, y, z).
void strided_mul_add(const std::vector<int64_t>& dims, const Strides& strides, const float* x, const float* y,
                     const float* z, float* out);
// out[i] = x[Σ c_d(i)·strides[0][d]]: broadcastTo, and permute's general case.
void strided_copy(const std::vector<int64_t>& dims, const Strides& strides, const float* x, float* out);

// out[i] = a[i] == b[i] ? 1 : 0 (where an input attains a max/min).
void equal_mask(int64_t n, const float* a, const float* b, float* out);
// Gradient share of a in maximum/minimum(a, b) from d = a − b: 1 where a wins, 0.5 at
// ties, 0 where b wins (d NaN: 0 for maximum, 1 for minimum, like the CPU).
void minmax_share(int64_t n, const float* d, float* out, bool is_max);

}  // namespace fd::cuda
