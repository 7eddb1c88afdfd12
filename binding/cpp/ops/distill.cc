// Fused distillation losses (METHODS.md §1–2): the SiD generator loss with its per-sample weight and NaN
// masking, computed in one pass with its gradients with respect to r, f and x_g.
#include <cmath>

#include "core/dispatch.h"
#include "core/stream.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/loss.h"
#endif

// Inside a launch() lambda: runs `call` on dev's CUDA device and returns, for a
// CUDA tensor; compiles to nothing without CUDA (no CUDA tensors exist there).
namespace fd::ops {
namespace {

// Per sample b over its P values (METHODS.md §1(b)):
//   w_b = 1/max(mean_p |x_g − r|, 1e-5)                         (detached)
//   L_b = w_b·Σ_p [(1 − α)(r − f)² + (r − f)(f − x_g)]
//   ∂L_b/∂r = w_b·[(r − x_g) + (1 − 2α)(r − f)], ∂L_b/∂f = w_b·[2α(r − f) − (r − x_g)], ∂L_b/∂x_g = −w_b·(r − f)
// A sample with a non-finite r, f or x_g is masked: L_b = 0, zero gradients, mask_b = 0.
struct SidShape {
  int64_t B, P;
  float alpha;
};

struct SidLossBackward : Node {
  SidShape s;
  TensorPtr r, f, xg, w;  // w: the weights, 0 for masked samples
  const char* name() const override { return "sid_loss"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr, nullptr};
    TensorPtr gy = g[0], rs = r, fs = f, xs = xg, ws = w;
    TensorPtr gr = empty(r->shape, r->device()), gf = empty(f->shape, f->device()), gx = empty(xg->shape, xg->device());
    const SidShape q = s;
    const Device dev = r->device();
    launch("sid_loss_backward", [=] {
      FD_CUDA_BRANCH(dev, cuda::sid_loss_backward(q.B, q.P, q.alpha, rs->data(), fs->data(), xs->data(), ws->data(),
                                                  gy->data(), gr->data(), gf->data(), gx->data()));
      for (int64_t b = 0; b < q.B; ++b) {
        const float k = gy->data()[b] * ws->data()[b];
        const int64_t o = b * q.P;
        for (int64_t p = o; p < o + q.P; ++p) {
          const float rf = rs->data()[p] - fs->data()[p], rx = rs->data()[p] - xs->data()[p];
          gr->data()[p] = k == 0.f ? 0.f : k * (rx + (1.f - 2.f * q.alpha) * rf);
          gf->data()[p] = k == 0.f ? 0.f : k * (2.f * q.alpha * rf - rx);
          gx->data()[p] = k == 0.f ? 0.f : -k * rf;
        }
      }
    });
    return {next[0].fn ? gr : nullptr, next[1].fn ? gf : nullptr, next[2].fn ? gx : nullptr};
  }
  void release() override { r = f = xg = w = nullptr; }
};

}  // namespace

std::vector<TensorPtr> sid_loss(const TensorPtr& r, const TensorPtr& f, const TensorPtr& xg, float alpha) {
  check_same_device("sid_loss", r, f);
  check_same_device("sid_loss", r, xg);
  FD_CHECK(r->shape == f->shape && r->shape == xg->shape && r->dim() >= 1, ErrorCode::Shape,
           "sid_loss: r ", shape_str(r->shape), ", f ", shape_str(f->shape), " and x_g ", shape_str(xg->shape),
           " must have one shape [B, ...]");
  FD_CHECK(std::isfinite(alpha), ErrorCode::Argument, "sid_loss: alpha must be finite, got ", alpha);
  const int64_t B = r->shape[0];
  const SidShape s{B, B > 0 ? r->numel() / B : 0, alpha};
  TensorPtr loss = empty({B}, r->device()), mask = empty({B}, r->device()), w = empty({B}, r->device());
  const Device dev = r->device();
  launch("sid_loss", [=] {
    FD_CUDA_BRANCH(dev, cuda::sid_loss_forward(s.B, s.P, s.alpha, r->data(), f->data(), xg->data(), loss->data(),
                                               mask->data(), w->data()));
    for (int64_t b = 0; b < s.B; ++b) {
      const float* rp = r->data() + b * s.P;
      const float* fp = f->data() + b * s.P;
      const float* xp = xg->data() + b * s.P;
      bool finite = true;
      double abs_sum = 0;
      for (int64_t p = 0; p < s.P; ++p) {
        finite = finite && std::isfinite(rp[p]) && std::isfinite(fp[p]) && std::isfinite(xp[p]);
        abs_sum += std::fabs(double(xp[p]) - double(rp[p]));
      }
      if (!finite) {
        loss->data()[b] = 0.f, mask->data()[b] = 0.f, w->data()[b] = 0.f;
        continue;
      }
      const double weight = 1.0 / std::max(abs_sum / double(std::max<int64_t>(s.P, 1)), 1e-5);
      double total = 0;
      for (int64_t p = 0; p < s.P; ++p) {
        const double rf = double(rp[p]) - fp[p], fx = double(fp[p]) - xp[p];
        total += (1.0 - s.alpha) * rf * rf + rf * fx;
      }
      loss->data()[b] = float(weight * total), mask->data()[b] = 1.f, w->data()[b] = float(weight);
    }
  });
  if (any_requires_grad({&r, &f, &xg})) {
    auto node = std::make_shared<SidLossBackward>();
    node->s = s;
    node->r = save(r), node->f = save(f), node->xg = save(xg), node->w = w;
    record(node, {r, f, xg}, {loss});
  }
  return {loss, mask};
}

}  // namespace fd::ops
