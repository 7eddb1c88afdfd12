// CUDA GEMM and convolution entry points: the twins of fd::kernels::sgemm*,
// conv2d_* (kernels/gemm.h), same signatures and semantics, device pointers,
// launched on the current device's stream. sgemm reads fd::matmul_precision()
// (core/precision.h) when the call is issued: tensor cores (TF32 or BF16 inputs)
// or float32 FMA; accumulation is float32 in every mode.
#pragma once
#include "kernels/gemm.h"

namespace fd::cuda {

using kernels::Conv2dShape;
using kernels::GemmEpilogue;
using kernels::MatView;

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
           const GemmEpilogue& epilogue = {});
void sgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, MatView A, int64_t stride_a, MatView B,
                   int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c);

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_input(const Conv2dShape& s, const float* gy, const float* w, float* gx);
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gb);

}  // namespace fd::cuda
