// FD_DISPATCH(device, fn, args...) runs fd::kernels::fn(args...) for CPU tensors and
// fd::cuda::fn(args...) (same signature, device pointers, launched on the device's
// stream) for CUDA tensors. Call it inside a launch() lambda, like any kernel.
// Builds without CUDA never create CUDA tensors, so the macro is CPU-only there.
#pragma once
#include "core/tensor.h"

//
// FD_ON_DEVICE(device, cpu_call, cuda_call): the same choice for kernels whose CPU and
// CUDA sides have different names or signatures; both calls must be void.
// FD_CUDA_BRANCH(device, call): a statement for the top of a kernel lambda: on CUDA,
// runs `call` and returns from the lambda; the CPU code follows it.
#if FASTDIFF_WITH_CUDA
#include "cuda/runtime.h"
#define FD_DISPATCH(device, fn, ...)                                                              \
  ((device).type == ::fd::DeviceType::CUDA ? (::fd::cuda::set_device((device).index), ::fd::cuda::fn(__VA_ARGS__)) \
                                           : ::fd::kernels::fn(__VA_ARGS__))
#define FD_ON_DEVICE(device, cpu_call, cuda_call)                                                    \
  ((device).type == ::fd::DeviceType::CUDA ? (::fd::cuda::set_device((device).index), (cuda_call)) \
                                           : (cpu_call))
#define FD_CUDA_BRANCH(device, call)               \
  if ((device).type == ::fd::DeviceType::CUDA) {   \
    ::fd::cuda::set_device((device).index);        \
    call;                                          \
    return;                                        \
  }
#else
#define FD_DISPATCH(device, fn, ...) ((void)(device), ::fd::kernels::fn(__VA_ARGS__))
#define FD_ON_DEVICE(device, cpu_call, cuda_call) ((void)(device), (cpu_call))
#define FD_CUDA_BRANCH(device, call) (void)(device)
#endif

namespace fd {
inline bool on_cuda(const TensorPtr& t) { return t->device().type == DeviceType::CUDA; }
}  // namespace fd
