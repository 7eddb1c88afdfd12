// CUDA kernels of the fused losses (ops/embed.cc mse_loss, ops/distill.cc sid_loss).
// Device pointers, current device's stream. Reductions are in double with a fixed
// order (per-block partials, then one pass in index order): deterministic.
#pragma once
#include <cstdint>

namespace fd::cuda {

// per_element: y[i] = (a − b)²; else y[0] = Σ (a − b)² (divided by max(n, 1) when mean).
void mse_loss_forward(int64_t n, const float* a, const float* b, float* y, bool per_element, bool mean);
// ga = (a − b)·2·gy[i] (per element) or (a − b)·(gy[0]·k), k = 2/n (mean) or 2.
void mse_loss_backward(int64_t n, const float* a, const float* b, const float* gy, float* ga, bool per_element,
                       bool mean);

// SiD generator loss over B samples of P values (ops.h sid_loss): loss, mask, w [B];
// a sample with a non-finite r, f or x_g gets loss = mask = w = 0.
void sid_loss_forward(int64_t B, int64_t P, float alpha, const float* r, const float* f, const float* xg, float* loss,
                      float* mask, float* w);
// k = gy[b]·w[b]: gr = k·((r − x_g) + (1 − 2α)(r − f)), gf = k·(2α(r − f) − (r − x_g)), gx = −k·(r − f); 0 when k = 0.
void sid_loss_backward(int64_t B, int64_t P, float alpha, const float* r, const float* f, const float* xg,
                       const float* w, const float* gy, float* gr, float* gf, float* gx);

}  // namespace fd::cuda
