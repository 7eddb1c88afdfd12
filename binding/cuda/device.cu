// Device probe through the CUDA runtime (linked statically: only the driver is needed).
#include <cuda_runtime.h>

#include "device.h"

namespace fd::cuda {

ProbeResult probe() {
  ProbeResult r;
  r.compiled = true;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    r.reason = std::string("no usable CUDA driver/device: ") + cudaGetErrorString(err);
    return r;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    r.devices.push_back({i, prop.name, prop.major, prop.minor, static_cast<int64_t>(prop.totalGlobalMem)});
  }
  r.available = !r.devices.empty();
  if (!r.available) r.reason = "the CUDA driver reports no devices";
  return r;
}

}  // namespace fd::cuda
