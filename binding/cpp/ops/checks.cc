// Stream-side checks: they run in order with the kernels and report through the
// stream's deferred error, so a NaN found here surfaces at the next sync point
// (dataSync, await data(), synchronize) naming the check.
#include <cmath>

#include "core/stream.h"
#include "ops.h"

namespace fd::ops {

void check_finite(const TensorPtr& x, const std::string& what) {
  launch("checkFinite", [x, what] {
    const float* p = x->data();
    for (int64_t i = 0, n = x->numel(); i < n; ++i)
      if (!std::isfinite(p[i]))
        fail(ErrorCode::Numeric, "checkFinite: ", what, " ", shape_str(x->shape), " has a non-finite value (", p[i],
             ") at flat index ", i);
  });
}

}  // namespace fd::ops
