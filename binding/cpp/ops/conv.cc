// conv2d: NCHW input, weight [OC, C/groups, KH, KW]; forward and both gradients
// are implicit GEMMs in kernels/gemm.h (CPU) or cuda/gemm.h (CUDA).
//   saved: x, w (for grad_w and grad_x respectively)
#include "core/dispatch.h"
#include "core/profile.h"
#include "core/stream.h"
#include "kernels/gemm.h"
#include "ops.h"
#include "packed_weight.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/gemm.h"
#endif

namespace fd::ops {
namespace {

struct Conv2dBackward : Node {
  kernels::Conv2dShape s;
  TensorPtr x, w;
  bool has_bias;
  const char* name() const override { return "conv2d"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr, nullptr};
    TensorPtr gy = g[0], xs = x, ws = w, gx, gw, gb;
    const kernels::Conv2dShape shape = s;
    const Device dev = x->device();
    if (next[0].fn) {
      gx = empty(x->shape, dev);
      launch("conv2d_backward_input",
             [=] { FD_DISPATCH(dev, conv2d_backward_input, shape, gy->data(), ws->data(), gx->data()); });
    }
    const bool want_b = has_bias && next[2].fn;
    if (next[1].fn || want_b) {
      TensorPtr gw_buf = empty(w->shape, w->device());
      if (want_b) gb = empty({s.OC}, w->device());
      TensorPtr gbs = gb;
      launch("conv2d_backward_weight", [=] {
        FD_DISPATCH(dev, conv2d_backward_weight, shape, xs->data(), gy->data(), gw_buf->data(),
                    gbs ? gbs->data() : nullptr);
      });
      if (next[1].fn) gw = gw_buf;
    }
    return {gx, gw, gb};
  }
  void release() override { x = w = nullptr; }
};

}  // namespace

TensorPtr conv2d(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias, int64_t stride_h, int64_t stride_w,
                 int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups) {
  check_same_device("conv2d", x, w);
  FD_CHECK(x->dim() == 4 && w->dim() == 4, ErrorCode::Shape, "conv2d: expected input [N, C, H, W] and weight [OC, C/groups, KH, KW], got ",
           shape_str(x->shape), " and ", shape_str(w->shape));
  FD_CHECK(groups >= 1 && stride_h >= 1 && stride_w >= 1 && dil_h >= 1 && dil_w >= 1 && pad_h >= 0 && pad_w >= 0,
           ErrorCode::Argument, "conv2d: stride and dilation must be >= 1, padding >= 0 and groups >= 1");
  kernels::Conv2dShape s;
  s.N = x->shape[0], s.C = x->shape[1], s.H = x->shape[2], s.W = x->shape[3];
  s.OC = w->shape[0], s.KH = w->shape[2], s.KW = w->shape[3];
  s.stride_h = stride_h, s.stride_w = stride_w, s.pad_h = pad_h, s.pad_w = pad_w, s.dil_h = dil_h, s.dil_w = dil_w;
  s.groups = groups;
  FD_CHECK(s.C % groups == 0 && s.OC % groups == 0 && w->shape[1] == s.C / groups, ErrorCode::Shape,
           "conv2d: input ", shape_str(x->shape), " and weight ", shape_str(w->shape), " do not match with groups=",
           groups);
  FD_CHECK(s.OH() > 0 && s.OW() > 0, ErrorCode::Shape, "conv2d: kernel ", shape_str(w->shape),
           " does not fit input ", shape_str(x->shape), " with padding ", pad_h, "x", pad_w);
  if (bias) {
    check_same_device("conv2d", x, bias);
    FD_CHECK(bias->dim() == 1 && bias->shape[0] == s.OC, ErrorCode::Shape, "conv2d: bias ", shape_str(bias->shape),
             " does not match ", s.OC, " output channels");
  }
  TensorPtr y = empty({s.N, s.OC, s.OH(), s.OW()}, x->device());
  count_flops(2.0 * double(s.N * s.OC * s.OH() * s.OW()) * double(s.C / groups * s.KH * s.KW));
  const Device dev = x->device();
  const bool keep_pack = keeps_packed(w);  // ops/packed_weight.h
  // Profiler rows per shape and, on the CPU, per algorithm: "[1, 128, 7, 7] → 128 3×3 (direct3x3)".
  std::string shape_note;
  if (profiling_enabled()) {
    shape_note = shape_str(x->shape) + " → " + std::to_string(s.OC) + " " + std::to_string(s.KH) + "×" +
                 std::to_string(s.KW);
    if (dev.type == DeviceType::CPU)
      shape_note += std::string(" (") + kernels::conv2d_forward_path(s, keep_pack) + ")";
  }
  launch(profile_name("conv2d", shape_note), [=] {
    const float* b = bias ? bias->data() : nullptr;
    if (keep_pack) {
      const auto packed = packed_weight(
          w, [&](const kernels::PackedMatrix& p) { return kernels::packed_conv_weight_fits(p, s); },
          [&] { return kernels::pack_conv_weight_once(s, w->data()); });
      kernels::conv2d_forward(s, x->data(), w->data(), b, y->data(), packed.get());
      return;
    }
    FD_DISPATCH(dev, conv2d_forward, s, x->data(), w->data(), b, y->data());
  });
  if (any_requires_grad({&x, &w, &bias})) {
    auto node = std::make_shared<Conv2dBackward>();
    node->s = s, node->has_bias = bias != nullptr;
    node->x = save(x), node->w = save(w);
    record(node, {x, w, bias}, {y});
  }
  return y;
}

}  // namespace fd::ops
