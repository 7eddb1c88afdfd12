// Device probe through the CUDA runtime (linked statically: only the driver is needed).
#include <cuda_runtime.h>

#include "allocator.h"
#include "device.h"
#include "runtime.h"

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

std::vector<DeviceMemory> device_memory() {
  std::vector<DeviceMemory> out;
  for (int i = 0, n = device_count(); i < n; ++i) {
    const DeviceMemoryStats s = device_allocator().stats(i);
    out.push_back({i, s.live_bytes, s.cached_bytes, s.peak_bytes});
  }
  return out;
}

void synchronize_devices() { synchronize_all(); }

void empty_device_caches() {
  synchronize_all();
  for (int i = 0, n = device_count(); i < n; ++i) device_allocator().empty_cache(i);
}

}  // namespace fd::cuda
