// Host-side CUDA runtime interface, includable from plain C++ (no CUDA headers).
// Kernels launch on the stream of the calling thread's current device: the CPU
// stream worker calls set_device() (through FD_DISPATCH) before each CUDA kernel,
// so CUDA work stays in the engine's one stream order.
#pragma once
#include <cstdint>

namespace fd::cuda {

int device_count();          // 0 when there is no usable driver/device
void set_device(int index);  // for the calling thread; cheap when unchanged
int current_device();

// Copies on the current device's stream. copy_d2h waits for the stream so the
// host buffer is complete when it returns; copy_h2d reads `src` before returning.
void copy_h2d(float* dst, const float* src, int64_t n);
void copy_d2h(float* dst, const float* src, int64_t n);
void copy_d2d(float* dst, const float* src, int64_t n);
void fill(float* dst, int64_t n, float value);
void arange(float* dst, int64_t n, double start, double step);
// Waits for the current device's stream; rethrows a pending CUDA fault as fd::Error(ERR_CUDA).
void synchronize();
// Waits for every device stream created so far (fd.synchronize(), benchmarks).
void synchronize_all();

}  // namespace fd::cuda
