// Reductions behind ops/reduce.cc and ops/checks.cc. Device pointers, current stream.
#pragma once
#include <cstdint>

namespace fd::cuda {

enum class ReduceOp { Sum, Max, Min };

// out[o, i] = reduce_r x[o, r, i] for x [outer, R, inner] (float32 accumulation, a fixed
// order that depends only on the shape: bitwise reproducible). Max/Min propagate NaN;
// R == 0 gives 0 for Sum (the op rejects empty Max/Min).
void reduce(ReduceOp op, const float* x, float* out, int64_t outer, int64_t R, int64_t inner);

// Index of the first non-finite value of x[0, n) (and that value in *value), or −1.
// Blocks until the answer is on the host (call it from a stream lambda).
int64_t first_nonfinite(const float* x, int64_t n, float* value);

}  // namespace fd::cuda
