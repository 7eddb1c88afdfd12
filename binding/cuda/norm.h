// CUDA twins of the normalization and softmax kernels of kernels/vector.h: the
// same signatures and semantics, device pointers, launched on the current
// device's stream. Statistics are float32 on the device (the CPU accumulates in
// double); every reduction has a fixed order, so results are deterministic.
#pragma once
#include <cstdint>

namespace fd::cuda {

void group_norm_forward(int64_t N, int64_t C, int64_t HW, int64_t G, float eps, const float* x, const float* gamma,
                        const float* beta, bool silu, float* y, float* mean, float* rstd);
void group_norm_backward(int64_t N, int64_t C, int64_t HW, int64_t G, const float* x, const float* gamma,
                         const float* beta, bool silu, const float* mean, const float* rstd, const float* gy, float* gx,
                         float* ggamma, float* gbeta);

void layer_norm_forward(int64_t M, int64_t D, float eps, const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd);
void layer_norm_backward(int64_t M, int64_t D, const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* ggamma, float* gbeta);

void softmax_forward(int64_t M, int64_t D, const float* x, float* y, bool log);
void softmax_backward(int64_t M, int64_t D, const float* y, const float* gy, float* gx, bool log);

}  // namespace fd::cuda
