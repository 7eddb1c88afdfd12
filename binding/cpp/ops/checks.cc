// Stream-side checks: they run in order with the kernels and report through the
// stream's deferred error, so a NaN found here surfaces at the next sync point
// (dataSync, await data(), synchronize) naming the check.
#include <cmath>

#include "core/stream.h"
#include "core/dispatch.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/reduce.h"
#endif

namespace fd::ops {
namespace {

// Index of the first non-finite value (and the value), or −1.
int64_t first_nonfinite(const float* p, int64_t n, float* value) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return *value = p[i], i;
  return -1;
}

}  // namespace

void check_finite(const TensorPtr& x, const std::string& what) {
  const Device dev = x->device();
  launch("checkFinite", [x, what, dev] {
    float value = 0.f;
    int64_t at = -1;
    // CUDA: a device search whose answer is copied back here (the stream worker may block).
    FD_ON_DEVICE(dev, void(at = first_nonfinite(x->data(), x->numel(), &value)),
                 void(at = cuda::first_nonfinite(x->data(), x->numel(), &value)));
    if (at >= 0)
      fail(ErrorCode::Numeric, "checkFinite: ", what, " ", shape_str(x->shape), " has a non-finite value (", value,
           ") at flat index ", at);
  });
}

}  // namespace fd::ops
