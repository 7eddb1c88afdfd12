// Streams (one per device, created lazily), copies, fills and error reporting.
#include <mutex>
#include <vector>

#include "common.cuh"

namespace fd::cuda {
namespace {

thread_local int tl_device = 0;

struct Streams {
  std::mutex mutex;
  std::vector<cudaStream_t> per_device;
};
Streams& streams() {
  static Streams* s = new Streams;  // never destroyed: outlives CUDA teardown at exit
  return *s;
}

__global__ void fill_kernel(float* dst, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

__global__ void arange_kernel(float* dst, int64_t n, double start, double step) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = float(start + double(i) * step);
}

}  // namespace

void check(cudaError_t err, const char* op) {
  if (err != cudaSuccess) fail(ErrorCode::Cuda, op, ": CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void set_device(int index) {
  if (index == tl_device) return;
  check(cudaSetDevice(index), "set_device");
  tl_device = index;
}

int current_device() { return tl_device; }

cudaStream_t stream() {
  Streams& s = streams();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (int(s.per_device.size()) <= tl_device) s.per_device.resize(tl_device + 1, nullptr);
  cudaStream_t& st = s.per_device[tl_device];
  if (!st) {
    check(cudaSetDevice(tl_device), "stream");
    check(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "stream");
  }
  return st;
}

void copy_h2d(float* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  check(cudaMemcpyAsync(dst, src, size_t(n) * sizeof(float), cudaMemcpyHostToDevice, stream()), "to(cuda)");
  // Pageable source: make sure it has been read before the caller may free it.
  check(cudaStreamSynchronize(stream()), "to(cuda)");
}

void copy_d2h(float* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  check(cudaMemcpyAsync(dst, src, size_t(n) * sizeof(float), cudaMemcpyDeviceToHost, stream()), "to(cpu)");
  check(cudaStreamSynchronize(stream()), "to(cpu)");
}

void copy_d2d(float* dst, const float* src, int64_t n) {
  if (n <= 0 || dst == src) return;
  check(cudaMemcpyAsync(dst, src, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream()), "copy");
}

void fill(float* dst, int64_t n, float value) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n), 256, 0, stream()>>>(dst, n, value);
  check_launch("full");
}

void arange(float* dst, int64_t n, double start, double step) {
  if (n <= 0) return;
  arange_kernel<<<grid_for(n), 256, 0, stream()>>>(dst, n, start, step);
  check_launch("arange");
}

void synchronize() { check(cudaStreamSynchronize(stream()), "synchronize"); }

void synchronize_all() {
  std::vector<cudaStream_t> all;
  {
    Streams& s = streams();
    std::lock_guard<std::mutex> lock(s.mutex);
    all = s.per_device;
  }
  for (cudaStream_t st : all)
    if (st) check(cudaStreamSynchronize(st), "synchronize");
}

}  // namespace fd::cuda
