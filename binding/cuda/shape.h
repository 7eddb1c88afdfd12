// Data-movement kernels behind ops/shape.cc and ops/creation.cc. Device pointers,
// current stream.
#pragma once
#include <cstdint>
#include <vector>

namespace fd::cuda {

// dst[r·dst_stride + c] = src[r·src_stride + c] for r < rows, c < len (concat, slice, split).
void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t len);
// y = x permuted: y's dim i is x's dim perm[i] (x contiguous with `shape`; perm normalized).
void permute(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& perm, float* y);
// y (shape + before + after per dim) = x placed at `before`, `value` elsewhere.
void pad(const float* x, const std::vector<int64_t>& shape, const std::vector<int64_t>& before,
         const std::vector<int64_t>& after, float value, float* y);
// Copies n floats between two devices (blocks until done: both streams are synchronized).
void copy_peer(float* dst, int dst_device, const float* src, int src_device, int64_t n);

}  // namespace fd::cuda
