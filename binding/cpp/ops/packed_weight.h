// Weights kept packed for the GEMM across calls (kernels::PackedMatrix), cached on the
// weight's storage. Used by linear (Wᵀ as B) and conv2d (weight rows, or Winograd's U, as A) when the call
// records no gradient for the weight — sampling, a frozen teacher — since a weight being
// trained changes every step. A pack is remade after an in-place write (Storage::version),
// for another view of the storage, or when `fits` rejects it (ISA, precision, K blocking).
#pragma once
#include <functional>
#include <memory>

#include "core/tensor.h"
#include "kernels/gemm.h"

namespace fd::ops {

// Whether this call may use a kept pack of w: a CPU leaf whose gradient is not recorded.
bool keeps_packed(const TensorPtr& w);

// Call on the stream (inside the kernel lambda). Returns the kept pack when `fits` accepts it,
// else `make()`'s, which is kept unless it is null (the kernel takes a path without one).
std::shared_ptr<const kernels::PackedMatrix> packed_weight(
    const TensorPtr& w, const std::function<bool(const kernels::PackedMatrix&)>& fits,
    const std::function<std::shared_ptr<const kernels::PackedMatrix>()>& make);

}  // namespace fd::ops
