// Spatial resampling as one separable operator: every output pixel is a weighted
// sum of input taps, y[oy, ox] = Σ wy[oy][a]·wx[ox][b]·x[iy[oy][a], ix[ox][b]].
// Nearest upsampling, average pooling, bilinear and bicubic resizing
// (align_corners=false, PyTorch's conventions) differ only in their tap tables;
// the gradient is the transposed (scatter) sum.
#include <algorithm>
#include <cmath>

#include "core/stream.h"
#include "core/threadpool.h"
#include "ops.h"

namespace fd::ops {
namespace {

struct Taps {
  int64_t per_output = 1;
  std::vector<int64_t> index;  // [out * per_output]
  std::vector<float> weight;
};

Taps nearest_taps(int64_t in, int64_t scale) {
  Taps t;
  for (int64_t o = 0; o < in * scale; ++o) t.index.push_back(o / scale), t.weight.push_back(1.f);
  return t;
}

Taps pool_taps(int64_t in, int64_t kernel, int64_t stride) {
  Taps t;
  t.per_output = kernel;
  const int64_t out = (in - kernel) / stride + 1;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t j = 0; j < kernel; ++j) t.index.push_back(o * stride + j), t.weight.push_back(1.f / float(kernel));
  return t;
}

Taps linear_taps(int64_t in, int64_t out) {
  Taps t;
  t.per_output = 2;
  const double scale = double(in) / double(out);
  for (int64_t o = 0; o < out; ++o) {
    const double src = std::max(0.0, (o + 0.5) * scale - 0.5);
    const int64_t i0 = std::min<int64_t>(int64_t(src), in - 1), i1 = std::min<int64_t>(i0 + 1, in - 1);
    const float l = float(src - double(i0));
    t.index.push_back(i0), t.weight.push_back(1.f - l);
    t.index.push_back(i1), t.weight.push_back(l);
  }
  return t;
}

// Keys' cubic convolution with A = −0.75 (as PyTorch), indices clamped at the border.
Taps cubic_taps(int64_t in, int64_t out) {
  Taps t;
  t.per_output = 4;
  const double A = -0.75, scale = double(in) / double(out);
  auto near = [&](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };         // |x| ≤ 1
  auto far = [&](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
  for (int64_t o = 0; o < out; ++o) {
    const double src = (o + 0.5) * scale - 0.5;
    const int64_t i = int64_t(std::floor(src));
    const double f = src - double(i);
    const double w[4] = {far(f + 1), near(f), near(1 - f), far(2 - f)};
    for (int k = 0; k < 4; ++k)
      t.index.push_back(std::clamp<int64_t>(i - 1 + k, 0, in - 1)), t.weight.push_back(float(w[k]));
  }
  return t;
}

struct Resample {
  Taps ty, tx;
  int64_t in_h, in_w;
  int64_t out_h() const { return int64_t(ty.index.size()) / ty.per_output; }
  int64_t out_w() const { return int64_t(tx.index.size()) / tx.per_output; }

  // One tap of weight 1 per output (nearest upsampling): a gather, and a repeated source
  // row is a copy of the previous output row. Same values as the general loop (1·x = x).
  bool is_gather() const {
    auto unit = [](const Taps& t) {
      return t.per_output == 1 && std::all_of(t.weight.begin(), t.weight.end(), [](float w) { return w == 1.f; });
    };
    return unit(ty) && unit(tx);
  }

  void gather(const float* x, float* y, int64_t planes) const {
    const int64_t oh = out_h(), ow = out_w();
    ThreadPool::global().parallel_for(planes, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const float* src = x + p * in_h * in_w;
        float* dst = y + p * oh * ow;
        for (int64_t oy = 0; oy < oh; ++oy) {
          float* out = dst + oy * ow;
          if (oy > 0 && ty.index[oy] == ty.index[oy - 1]) {
            std::copy(out - ow, out, out);
            continue;
          }
          const float* row = src + ty.index[oy] * in_w;
          for (int64_t ox = 0; ox < ow; ++ox) out[ox] = row[tx.index[ox]];
        }
      }
    });
  }

  void forward(const float* x, float* y, int64_t planes) const {
    if (is_gather()) return gather(x, y, planes);
    const int64_t oh = out_h(), ow = out_w(), ky = ty.per_output, kx = tx.per_output;
    ThreadPool::global().parallel_for(planes, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const float* src = x + p * in_h * in_w;
        float* dst = y + p * oh * ow;
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) {
            float acc = 0.f;
            for (int64_t a = 0; a < ky; ++a) {
              const float* row = src + ty.index[oy * ky + a] * in_w;
              float r = 0.f;
              for (int64_t b = 0; b < kx; ++b) r += tx.weight[ox * kx + b] * row[tx.index[ox * kx + b]];
              acc += ty.weight[oy * ky + a] * r;
            }
            dst[oy * ow + ox] = acc;
          }
      }
    });
  }

  void backward(const float* gy, float* gx, int64_t planes) const {
    const int64_t oh = out_h(), ow = out_w(), ky = ty.per_output, kx = tx.per_output;
    ThreadPool::global().parallel_for(planes, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        float* dst = gx + p * in_h * in_w;
        const float* src = gy + p * oh * ow;
        std::fill(dst, dst + in_h * in_w, 0.f);
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t a = 0; a < ky; ++a) {
            float* row = dst + ty.index[oy * ky + a] * in_w;
            const float wy = ty.weight[oy * ky + a];
            for (int64_t ox = 0; ox < ow; ++ox) {
              const float g = wy * src[oy * ow + ox];
              for (int64_t b = 0; b < kx; ++b) row[tx.index[ox * kx + b]] += tx.weight[ox * kx + b] * g;
            }
          }
      }
    });
  }
};

struct ResampleBackward : Node {
  std::shared_ptr<const Resample> r;
  Shape in_shape;
  const char* op;
  const char* name() const override { return op; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    TensorPtr gy = g[0], gx = empty(in_shape, gy->device());
    auto plan = r;
    const int64_t planes = in_shape[0] * in_shape[1];
    launch(op, [=] { plan->backward(gy->data(), gx->data(), planes); });
    return {gx};
  }
};

TensorPtr resample(const char* op, const TensorPtr& x, std::shared_ptr<Resample> r) {
  TensorPtr y = empty({x->shape[0], x->shape[1], r->out_h(), r->out_w()}, x->device());
  const int64_t planes = x->shape[0] * x->shape[1];
  std::shared_ptr<const Resample> plan = r;
  launch(op, [=] { plan->forward(x->data(), y->data(), planes); });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<ResampleBackward>();
    node->r = plan, node->in_shape = x->shape, node->op = op;
    record(node, {x}, {y});
  }
  return y;
}

void check_image(const char* op, const TensorPtr& x) {
  FD_CHECK(x->dim() == 4, ErrorCode::Shape, op, ": expected an image batch [N, C, H, W], got ", shape_str(x->shape));
  FD_CHECK(x->shape[2] > 0 && x->shape[3] > 0, ErrorCode::Shape, op, ": empty image ", shape_str(x->shape));
}

}  // namespace

TensorPtr upsample_nearest2d(const TensorPtr& x, int64_t scale_h, int64_t scale_w) {
  check_image("upsample_nearest2d", x);
  FD_CHECK(scale_h >= 1 && scale_w >= 1, ErrorCode::Argument, "upsample_nearest2d: scale must be a positive integer");
  auto r = std::make_shared<Resample>();
  r->in_h = x->shape[2], r->in_w = x->shape[3];
  r->ty = nearest_taps(r->in_h, scale_h), r->tx = nearest_taps(r->in_w, scale_w);
  return resample("upsample_nearest2d", x, r);
}

TensorPtr avg_pool2d(const TensorPtr& x, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w) {
  check_image("avg_pool2d", x);
  FD_CHECK(kernel_h >= 1 && kernel_w >= 1 && stride_h >= 1 && stride_w >= 1 && kernel_h <= x->shape[2] &&
               kernel_w <= x->shape[3],
           ErrorCode::Argument, "avg_pool2d: kernel ", kernel_h, "x", kernel_w, " stride ", stride_h, "x", stride_w,
           " does not fit ", shape_str(x->shape));
  auto r = std::make_shared<Resample>();
  r->in_h = x->shape[2], r->in_w = x->shape[3];
  r->ty = pool_taps(r->in_h, kernel_h, stride_h), r->tx = pool_taps(r->in_w, kernel_w, stride_w);
  return resample("avg_pool2d", x, r);
}

TensorPtr resize(const TensorPtr& x, int64_t out_h, int64_t out_w, ResizeMode mode) {
  const char* op = mode == ResizeMode::Bilinear ? "resize_bilinear" : "resize_bicubic";
  check_image(op, x);
  FD_CHECK(out_h >= 1 && out_w >= 1, ErrorCode::Argument, op, ": output size must be positive, got ", out_h, "x",
           out_w);
  auto r = std::make_shared<Resample>();
  r->in_h = x->shape[2], r->in_w = x->shape[3];
  if (mode == ResizeMode::Bilinear) {
    r->ty = linear_taps(r->in_h, out_h), r->tx = linear_taps(r->in_w, out_w);
  } else {
    r->ty = cubic_taps(r->in_h, out_h), r->tx = cubic_taps(r->in_w, out_w);
  }
  return resample(op, x, r);
}

}  // namespace fd::ops
