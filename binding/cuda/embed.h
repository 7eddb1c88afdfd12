// CUDA kernels of ops/embed.cc: sinusoidal timestep embedding, class-label
// embedding, Gaussian Fourier projection and dropout. Device pointers (except
// where a parameter says host), current device's stream, no synchronization.
// Sines and cosines are evaluated in double and rounded once, so they agree with
// the CPU's float sinf/cosf to the last bit or one ulp.
#pragma once
#include <cstdint>

namespace fd::cuda {

// y [B, dim] from t [B]: column sin_at(i) = sin(scale·(t·f_i)), cos_at(i) = cos(...),
// i < half, with sin_at(i) = flip ? half + i : i and cos_at(i) the other half; an odd
// dim's last column is 0. freq: HOST array of the half frequencies (the CPU's own
// float values, so the arguments match bit for bit); it is copied into the launch.
void timestep_embedding_forward(int64_t B, int64_t dim, int64_t half, bool flip, float scale, const float* freq,
                                const float* t, float* y);
// gt[b] = Σ_i f·(gy[sin_at]·cos(t·f) − gy[cos_at]·sin(t·f)), f = f_i·scale, in double.
void timestep_embedding_backward(int64_t B, int64_t dim, int64_t half, bool flip, float scale, const float* freq,
                                 const float* t, const float* gy, float* gt);

// y[b] = weight[labels[b]] for HOST labels (checked by the op), weight [V, D].
void embedding_forward(const int32_t* labels, int64_t B, int64_t D, const float* weight, float* y);
// gw [V, D] = Σ over b with labels[b] = v of gy[b], added in label order (bit-identical to the CPU).
void embedding_backward(const int32_t* labels, int64_t B, int64_t V, int64_t D, const float* gy, float* gw);

// y [B, 2C] = [sin, cos](((x·W)·2)·π) with float32 rounding after each product (diffusers' order).
void gaussian_fourier_forward(int64_t B, int64_t C, const float* x, const float* w, float* y);
// gx[b] = Σ_i 2πW_i·(gy_sin·cos(arg) − gy_cos·sin(arg)), in double.
void gaussian_fourier_backward(int64_t B, int64_t C, const float* x, const float* w, const float* gy, float* gx);

// y = x·keep/(1 − p) with keep from fd::cuda::fill_dropout_mask(seed, offset) (the CPU's mask).
void dropout_forward(int64_t n, const float* x, float* y, float p, uint64_t seed, uint64_t offset);

}  // namespace fd::cuda
