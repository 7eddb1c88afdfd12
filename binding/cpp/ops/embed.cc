// Sinusoidal timestep embedding (diffusers' get_timestep_embedding, float32 like
// diffusers), class-label embedding, seeded dropout and the fused MSE loss.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dispatch.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/threadpool.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/embed.h"
#include "cuda/loss.h"
#endif

// Inside a launch() lambda: runs `call` on dev's CUDA device and returns, for a
// CUDA tensor; compiles to nothing without CUDA (no CUDA tensors exist there).
namespace fd::ops {
namespace {

struct EmbeddingParams {
  int64_t dim, half;
  bool flip;
  float shift, scale, max_period;
  float frequency(int64_t i) const {
    const float exponent = float(-std::log(double(max_period))) * float(i) / (float(half) - shift);
    return std::exp(exponent);
  }
  // The `half` frequencies (the CUDA kernels take them from here, so both devices use the same floats).
  std::vector<float> frequencies() const {
    std::vector<float> f(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) f[i] = frequency(i);
    return f;
  }
};

struct TimestepEmbeddingBackward : Node {
  EmbeddingParams p;
  TensorPtr t;
  const char* name() const override { return "timestep_embedding"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    TensorPtr gy = g[0], ts = t, gt = empty(t->shape, t->device());
    const EmbeddingParams q = p;
    const Device dev = t->device();
    launch("timestep_embedding_backward", [=] {
      const int64_t B = ts->numel();
      FD_CUDA_BRANCH(dev, cuda::timestep_embedding_backward(B, q.dim, q.half, q.flip, q.scale, q.frequencies().data(),
                                                            ts->data(), gy->data(), gt->data()));
      const std::vector<float> freq = q.frequencies();
      for (int64_t b = 0; b < B; ++b) {
        double acc = 0;
        for (int64_t i = 0; i < q.half; ++i) {
          const float f = freq[i] * q.scale, arg = ts->data()[b] * f;
          const int64_t sin_at = q.flip ? q.half + i : i, cos_at = q.flip ? i : q.half + i;
          acc += double(gy->data()[b * q.dim + sin_at]) * f * std::cos(arg);
          acc -= double(gy->data()[b * q.dim + cos_at]) * f * std::sin(arg);
        }
        gt->data()[b] = float(acc);
      }
    });
    return {gt};
  }
  void release() override { t = nullptr; }
};

struct EmbeddingBackward : Node {
  std::vector<int32_t> labels;
  Shape weight_shape;
  const char* name() const override { return "embedding"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    TensorPtr gy = g[0], gw = empty(weight_shape, gy->device());
    auto ids = labels;
    const Device dev = gy->device();
    launch("embedding_backward", [=] {
      const int64_t D = gw->shape[1];
      FD_CUDA_BRANCH(dev, cuda::embedding_backward(ids.data(), int64_t(ids.size()), gw->shape[0], D, gy->data(),
                                                   gw->data()));
      std::fill(gw->data(), gw->data() + gw->numel(), 0.f);
      for (size_t b = 0; b < ids.size(); ++b)  // in label order: deterministic
        for (int64_t d = 0; d < D; ++d) gw->data()[ids[b] * D + d] += gy->data()[b * D + d];
    });
    return {gw};
  }
};

struct DropoutBackward : Node {
  float p;
  uint64_t seed, offset;
  const char* name() const override { return "dropout"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    return {g[0] ? dropout(g[0], p, seed, offset) : nullptr};  // the same mask, regenerated from (seed, offset)
  }
};

struct MseBackward : Node {
  TensorPtr a, b;
  LossReduction reduction;
  const char* name() const override { return "mse_loss"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr};
    TensorPtr gy = g[0], as = a, bs = b, ga = empty(a->shape, a->device());
    const LossReduction r = reduction;
    const Device dev = a->device();
    launch("mse_loss_backward", [=] {
      const int64_t n = ga->numel();
      FD_CUDA_BRANCH(dev, cuda::mse_loss_backward(n, as->data(), bs->data(), gy->data(), ga->data(),
                                                  r == LossReduction::None, r == LossReduction::Mean));
      const float* x = as->data();
      const float* y = bs->data();
      float* o = ga->data();
      const bool per_element = r == LossReduction::None;
      const float k = r == LossReduction::Mean ? 2.f / float(n) : 2.f;
      const float g0 = per_element ? 0.f : gy->data()[0] * k;
      for (int64_t i = 0; i < n; ++i) o[i] = (x[i] - y[i]) * (per_element ? 2.f * gy->data()[i] : g0);
    });
    return {next[0].fn ? ga : nullptr, next[1].fn ? unary(Unary::Neg, ga) : nullptr};
  }
  void release() override { a = b = nullptr; }
};

}  // namespace

TensorPtr timestep_embedding(const TensorPtr& t, int64_t dim, bool flip_sin_to_cos, float downscale_freq_shift,
                             float scale, float max_period) {
  FD_CHECK(t->dim() == 1, ErrorCode::Shape, "timestep_embedding: timesteps must be 1-d [B], got ", shape_str(t->shape));
  FD_CHECK(dim >= 2, ErrorCode::Argument, "timestep_embedding: dim must be >= 2, got ", dim);
  EmbeddingParams p{dim, dim / 2, flip_sin_to_cos, downscale_freq_shift, scale, max_period};
  FD_CHECK(float(p.half) - p.shift != 0.f, ErrorCode::Argument, "timestep_embedding: half_dim - shift is zero");
  TensorPtr y = empty({t->shape[0], dim}, t->device());
  const Device dev = t->device();
  launch("timestep_embedding", [=] {
    const int64_t B = t->numel();
    FD_CUDA_BRANCH(dev, cuda::timestep_embedding_forward(B, dim, p.half, p.flip, p.scale, p.frequencies().data(),
                                                         t->data(), y->data()));
    float* out = y->data();
    const std::vector<float> freq = p.frequencies();  // once, not per element (a log and an exp each)
    for (int64_t b = 0; b < B; ++b) {
      float* row = out + b * dim;
      for (int64_t i = 0; i < p.half; ++i) {
        const float arg = p.scale * (t->data()[b] * freq[i]);
        row[p.flip ? p.half + i : i] = std::sin(arg);
        row[p.flip ? i : p.half + i] = std::cos(arg);
      }
      if (dim % 2) row[dim - 1] = 0.f;
    }
  });
  if (any_requires_grad({&t})) {
    auto node = std::make_shared<TimestepEmbeddingBackward>();
    node->p = p, node->t = save(t);
    record(node, {t}, {y});
  }
  return y;
}

TensorPtr embedding(const TensorPtr& weight, const std::vector<int32_t>& labels) {
  FD_CHECK(weight->dim() == 2, ErrorCode::Shape, "embedding: weight must be [classes, dim], got ",
           shape_str(weight->shape));
  const int64_t V = weight->shape[0], D = weight->shape[1];
  for (int32_t id : labels)
    FD_CHECK(id >= 0 && id < V, ErrorCode::Argument, "embedding: label ", id, " is out of range for ", V,
             " classes (weight ", shape_str(weight->shape), ")");
  TensorPtr y = empty({int64_t(labels.size()), D}, weight->device());
  const Device dev = weight->device();
  launch("embedding", [=] {
    FD_CUDA_BRANCH(dev, cuda::embedding_forward(labels.data(), int64_t(labels.size()), D, weight->data(), y->data()));
    for (size_t b = 0; b < labels.size(); ++b)
      std::copy(weight->data() + labels[b] * D, weight->data() + (labels[b] + 1) * D, y->data() + b * D);
  });
  if (any_requires_grad({&weight})) {
    auto node = std::make_shared<EmbeddingBackward>();
    node->labels = labels, node->weight_shape = weight->shape;
    record(node, {weight}, {y});
  }
  return y;
}

TensorPtr dropout(const TensorPtr& x, float p, uint64_t seed, uint64_t offset) {
  FD_CHECK(p >= 0.f && p < 1.f, ErrorCode::Argument, "dropout: p must be in [0, 1), got ", p);
  TensorPtr y = empty(x->shape, x->device());
  const Device dev = x->device();
  launch("dropout", [=] {
    const int64_t n = x->numel();
    FD_CUDA_BRANCH(dev, cuda::dropout_forward(n, x->data(), y->data(), p, seed, offset));
    fill_dropout_mask(y->data(), n, seed, offset, p);
    const float keep_scale = 1.f / (1.f - p);
    float* o = y->data();
    const float* in = x->data();
    for (int64_t i = 0; i < n; ++i) o[i] = o[i] != 0.f ? in[i] * keep_scale : 0.f;
  });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<DropoutBackward>();
    node->p = p, node->seed = seed, node->offset = offset;
    record(node, {x}, {y});
  }
  return y;
}

TensorPtr mse_loss(const TensorPtr& a, const TensorPtr& b, LossReduction reduction) {
  check_same_device("mse_loss", a, b);
  FD_CHECK(a->shape == b->shape, ErrorCode::Shape, "mse_loss: prediction ", shape_str(a->shape), " and target ",
           shape_str(b->shape), " differ");
  TensorPtr y = reduction == LossReduction::None ? empty(a->shape, a->device()) : empty({}, a->device());
  const Device dev = a->device();
  launch("mse_loss", [=] {
    const int64_t n = a->numel();
    FD_CUDA_BRANCH(dev, cuda::mse_loss_forward(n, a->data(), b->data(), y->data(), reduction == LossReduction::None,
                                               reduction == LossReduction::Mean));
    const float* x = a->data();
    const float* t = b->data();
    if (reduction == LossReduction::None) {
      for (int64_t i = 0; i < n; ++i) y->data()[i] = (x[i] - t[i]) * (x[i] - t[i]);
      return;
    }
    double total = 0;  // fixed order: deterministic
    for (int64_t i = 0; i < n; ++i) total += double(x[i] - t[i]) * double(x[i] - t[i]);
    y->data()[0] = float(reduction == LossReduction::Mean ? total / double(std::max<int64_t>(n, 1)) : total);
  });
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<MseBackward>();
    node->a = save(a), node->b = save(b), node->reduction = reduction;
    record(node, {a, b}, {y});
  }
  return y;
}

// ---- Gaussian Fourier projection (UNet2DModel time_embedding_type "fourier") ----
namespace {

// y = [sin, cos](2π·x·W); saved: x, W. (W gets no gradient: diffusers keeps it frozen.)
struct FourierBackward : Node {
  TensorPtr x, w;
  const char* name() const override { return "gaussian_fourier_projection"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr};
    TensorPtr gy = g[0], xs = x, ws = w, gx = empty(x->shape, x->device());
    const Device dev = x->device();
    launch("gaussian_fourier_projection_backward", [=] {
      const int64_t B = xs->numel(), C = ws->numel();
      FD_CUDA_BRANCH(dev, cuda::gaussian_fourier_backward(B, C, xs->data(), ws->data(), gy->data(), gx->data()));
      const float two_pi = float(2.0 * M_PI);
      for (int64_t b = 0; b < B; ++b) {
        double acc = 0;
        for (int64_t i = 0; i < C; ++i) {
          const float arg = ((xs->data()[b] * ws->data()[i]) * 2.f) * float(M_PI);
          const double d = double(ws->data()[i]) * two_pi;
          acc += double(gy->data()[b * 2 * C + i]) * d * std::cos(arg);
          acc -= double(gy->data()[b * 2 * C + C + i]) * d * std::sin(arg);
        }
        gx->data()[b] = float(acc);
      }
    });
    return {gx, nullptr};
  }
  void release() override { x = w = nullptr; }
};

}  // namespace

TensorPtr gaussian_fourier_projection(const TensorPtr& x, const TensorPtr& w) {
  FD_CHECK(x->dim() == 1 && w->dim() == 1, ErrorCode::Shape, "gaussian_fourier_projection: expected x [B] and W [C], got ",
           shape_str(x->shape), " and ", shape_str(w->shape));
  check_same_device("gaussian_fourier_projection", x, w);
  const int64_t B = x->shape[0], C = w->shape[0];
  TensorPtr y = empty({B, 2 * C}, x->device());
  const Device dev = x->device();
  launch("gaussian_fourier_projection", [=] {
    FD_CUDA_BRANCH(dev, cuda::gaussian_fourier_forward(B, C, x->data(), w->data(), y->data()));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < C; ++i) {
        // x[:, None] * W[None, :] * 2 * π, each step rounded to float32 like torch.
        const float arg = ((x->data()[b] * w->data()[i]) * 2.f) * float(M_PI);
        y->data()[b * 2 * C + i] = std::sin(arg);
        y->data()[b * 2 * C + C + i] = std::cos(arg);
      }
  });
  if (any_requires_grad({&x, &w})) {
    auto node = std::make_shared<FourierBackward>();
    node->x = save(x), node->w = save(w);
    record(node, {x, w}, {y});
  }
  return y;
}

}  // namespace fd::ops
