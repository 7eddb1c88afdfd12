#include "packed_weight.h"

#include <mutex>

#include "core/autograd.h"

namespace fd::ops {

bool keeps_packed(const TensorPtr& w) {
  return w->device().type == DeviceType::CPU && !w->grad_fn && !any_requires_grad({&w});
}

std::shared_ptr<const kernels::PackedMatrix> packed_weight(
    const TensorPtr& w, const std::function<bool(const kernels::PackedMatrix&)>& fits,
    const std::function<std::shared_ptr<const kernels::PackedMatrix>()>& make) {
  static std::mutex mutex;  // streams of different JS threads may share a storage
  Storage& st = *w->storage;
  const uint64_t version = st.version.load(std::memory_order_acquire);
  std::lock_guard<std::mutex> lock(mutex);
  if (st.packed && st.packed_version == version && st.packed_offset == w->offset && fits(*st.packed))
    return st.packed;
  auto fresh = make();
  if (fresh) {
    st.packed = fresh;
    st.packed_version = version;
    st.packed_offset = w->offset;
  }
  return fresh;
}

}  // namespace fd::ops
