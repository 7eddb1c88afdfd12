// Linked when the addon is built without CUDA (FASTDIFF_CUDA=off or no nvcc).
#include "device.h"

namespace fd::cuda {

std::vector<DeviceMemory> device_memory() { return {}; }
void synchronize_devices() {}
void empty_device_caches() {}

ProbeResult probe() {
  ProbeResult r;
  r.reason = "this build of fastdiff was compiled without CUDA (rebuild with FASTDIFF_CUDA=on)";
  return r;
}

}  // namespace fd::cuda
