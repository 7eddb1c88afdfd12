// CUDA twins of the elementwise kernels of kernels/vector.h (unary, unary_backward,
// binary with scalar broadcast, sum_squares): same signatures and semantics, device
// pointers, launched on the current device's stream. (Normalization, softmax and
// optimizer twins live in cuda/norm.h and cuda/optim.h.)
#pragma once
#include <cstdint>

#include "kernels/vector.h"

namespace fd::cuda {

using kernels::Binary;
using kernels::Unary;

void unary(Unary op, int64_t n, const float* x, float* y, float a = 0.f, float b = 0.f);
// x or y may be null for ops that do not read them (see kernels::unary_backward).
void unary_backward(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a = 0.f,
                    float b = 0.f);
// out[i] = f(a[i*sa], b[i*sb]), sa, sb ∈ {0, 1}.
void binary(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out);
// Σ x² accumulated in double, in a fixed order (bitwise reproducible run to run); blocks
// until the result is on the host (call it from a stream lambda).
double sum_squares(int64_t n, const float* x);

}  // namespace fd::cuda
