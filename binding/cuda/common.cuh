// Shared by every .cu file: the current stream, launch checks and grid sizing.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"
#include "cuda/allocator.h"
#include "cuda/runtime.h"

namespace fd::cuda {

// The stream of the calling thread's current device (created on first use).
cudaStream_t stream();

// Throws fd::Error(ERR_CUDA) naming `op` when `err` is not cudaSuccess.
void check(cudaError_t err, const char* op);
// After a kernel launch: reports a bad configuration or an earlier asynchronous fault.
inline void check_launch(const char* op) { check(cudaGetLastError(), op); }

// Blocks for a grid-stride loop over n elements (capped: the loop covers the rest).
inline unsigned grid_for(int64_t n, int block = 256) {
  const int64_t blocks = (n + block - 1) / block;
  return unsigned(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

// Launch geometry for "rows × cols" kernels: threadIdx.y picks a row (an image plane, a
// col row...), threadIdx.x strides over its cols; narrow rows share a block so small
// planes do not leave most threads idle. Blocks stride over the rows (FD_FOR_ROWS), so
// any row count is covered.
struct RowGrid {
  dim3 grid, block;
};
inline RowGrid row_grid(int64_t rows, int64_t cols) {
  const int tx = cols >= 256 ? 256 : (cols <= 32 ? 32 : int((cols + 31) / 32 * 32));
  const int ty = 256 / tx;
  int64_t blocks = (rows + ty - 1) / ty;
  blocks = blocks < 1 ? 1 : (blocks > (int64_t(1) << 20) ? int64_t(1) << 20 : blocks);
  return {dim3(unsigned(blocks)), dim3(unsigned(tx), unsigned(ty))};
}
#define FD_FOR_ROWS(row, rows) \
  for (int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < (rows); row += int64_t(gridDim.x) * blockDim.y)

// Temporary device memory for one kernel sequence, from the caching allocator.
// Releasing right after the launches is safe: only work queued later on the same
// stream can get the block again. Throws ERR_OOM when the device is full.
class Scratch {
 public:
  Scratch(size_t bytes, const char* op) : device_(current_device()) {
    p_ = device_allocator().allocate(device_, bytes, &granted_);
    if (!p_) fail(ErrorCode::OutOfMemory, op, ": out of memory on cuda:", device_, " requesting ", bytes, " scratch bytes");
  }
  ~Scratch() { device_allocator().release(device_, p_, granted_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T = float>
  T* get() const { return static_cast<T*>(p_); }

 private:
  int device_;
  void* p_ = nullptr;
  size_t granted_ = 0;
};

}  // namespace fd::cuda
