// Separable resampling on the GPU (the device side of ops/resize.cc): every output
// pixel is y[oy, ox] = Σ_a wy(oy, a) · Σ_b wx(ox, b) · x[iy(oy, a), ix(ox, b)] over
// `per` taps per axis, and the gradient is the transposed sum, computed as a gather
// per input pixel (no atomics). Plain C++ header (no CUDA types).
#pragma once
#include <cstdint>

namespace fd::cuda {

// One axis of a resampling plan. Nearest and Pool taps are closed-form integer
// arithmetic (the same the CPU plan uses); Table taps come from the CPU plan's
// tables, uploaded to the device, with their transpose for the gradient.
struct ResampleAxis {
  enum Kind { Nearest, Pool, Table } kind = Nearest;
  int64_t in = 0, out = 0;
  int64_t per = 1;    // taps per output
  int64_t step = 1;   // Nearest: the scale (i = o / step); Pool: the stride (i = o·step + k)
  float weight = 1.f;  // Nearest and Pool: every tap's weight
  // Table (device pointers): output o's taps are index[o·per + k] with weight[o·per + k];
  // input i's taps are entries first[i] .. first[i+1]−1 of (tap_out, tap_weight).
  const int32_t* index = nullptr;
  const float* weights = nullptr;
  const int32_t* first = nullptr;
  const int32_t* tap_out = nullptr;
  const float* tap_weight = nullptr;
};

// x [planes, y.in, x.in] → y [planes, y.out, x.out] (overwritten); both axes of one kind.
void resample_forward(const float* x, float* y, int64_t planes, const ResampleAxis& ay, const ResampleAxis& ax);
// gy [planes, y.out, x.out] → gx [planes, y.in, x.in] (overwritten).
void resample_backward(const float* gy, float* gx, int64_t planes, const ResampleAxis& ay, const ResampleAxis& ax);

}  // namespace fd::cuda
