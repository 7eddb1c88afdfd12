// Philox on the GPU: the exact contract of core/rng.h (same (seed, offset) → the
// same float32 values as the CPU, bit for bit). Device pointers, current stream.
#pragma once
#include <cstdint>

namespace fd::cuda {

void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset, float low, float high);
void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev);
void fill_dropout_mask(float* out, int64_t n, uint64_t seed, uint64_t offset, float p);

}  // namespace fd::cuda
