// The CUDA seam: a device probe callable from every build. With FASTDIFF_CUDA=off
// (or no nvcc) the stub reports "not compiled"; with CUDA it asks the driver.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fd::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;
  int64_t total_memory = 0;
};

struct ProbeResult {
  bool compiled = false;   // this binary contains the CUDA backend
  bool available = false;  // a usable device and driver were found
  std::string reason;      // why not, when !available
  std::vector<DeviceInfo> devices;
};

ProbeResult probe();

// Device memory from the caching allocator, per device present.
struct DeviceMemory {
  int index = 0;
  int64_t live_bytes = 0, cached_bytes = 0, peak_bytes = 0;
};
std::vector<DeviceMemory> device_memory();
// Waits for every device stream (fd.synchronize()); throws ERR_CUDA on a device fault.
void synchronize_devices();
// Waits for the device streams, then returns cached blocks to the driver.
void empty_device_caches();

}  // namespace fd::cuda
