// Spatial resampling as one separable operator: every output pixel is a weighted
// sum of input taps, y[oy, ox] = Σ wy[oy][a]·wx[ox][b]·x[iy[oy][a], ix[ox][b]].
// Nearest upsampling, average pooling, bilinear and bicubic resizing
// (align_corners=false, PyTorch's conventions) differ only in their tap tables;
// the gradient is the transposed (scatter) sum. On CUDA the same plan runs as
// cuda::resample_* (cuda/resize.h): nearest and pooling taps are closed-form there,
// bilinear and bicubic tables are built here and uploaded.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dispatch.h"
#include "core/stream.h"
#include "core/threadpool.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/resize.h"
#endif

namespace fd::ops {
namespace {

struct Taps {
  // Nearest: index o / step, weight 1. Pool: index o·step + k, weight 1/per_output. Table: anything.
  enum Kind { Nearest, Pool, Table } kind = Table;
  int64_t step = 1;
  int64_t per_output = 1;
  std::vector<int64_t> index;  // [out * per_output]
  std::vector<float> weight;
};

Taps nearest_taps(int64_t in, int64_t scale) {
  Taps t;
  t.kind = Taps::Nearest, t.step = scale;
  for (int64_t o = 0; o < in * scale; ++o) t.index.push_back(o / scale), t.weight.push_back(1.f);
  return t;
}

Taps pool_taps(int64_t in, int64_t kernel, int64_t stride) {
  Taps t;
  t.kind = Taps::Pool, t.step = stride;
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

#if FASTDIFF_WITH_CUDA
// Appends int32 values bit for bit: the device tables live in a float tensor and the
// kernels read these entries as int32.
int64_t append_ints(std::vector<float>& buf, const std::vector<int32_t>& v) {
  const size_t at = buf.size();
  buf.resize(at + v.size());
  if (!v.empty()) std::memcpy(buf.data() + at, v.data(), v.size() * sizeof(int32_t));
  return int64_t(at);
}

// Offsets in the table buffer of one Table axis: index, weights, first, tap_out, tap_weight.
struct TableOffsets {
  int64_t at[5] = {0, 0, 0, 0, 0};
};

// The device form of one axis; a Table axis appends its taps and their transpose (for each
// input, the (output, weight) taps that read it, in increasing output order) to `buf`.
cuda::ResampleAxis device_axis(const Taps& t, int64_t in, std::vector<float>& buf, TableOffsets& off) {
  cuda::ResampleAxis a;
  a.in = in, a.per = t.per_output, a.out = int64_t(t.index.size()) / t.per_output, a.step = t.step;
  if (t.kind == Taps::Nearest || t.kind == Taps::Pool) {
    a.kind = t.kind == Taps::Nearest ? cuda::ResampleAxis::Nearest : cuda::ResampleAxis::Pool;
    a.weight = t.weight[0];  // every tap's weight (1 or 1/kernel, as computed by the CPU plan)
    return a;
  }
  a.kind = cuda::ResampleAxis::Table;
  const int64_t taps = int64_t(t.index.size());
  FD_CHECK(taps < (int64_t(1) << 31), ErrorCode::Argument, "resize: ", taps, " taps is too many for the CUDA kernel");
  std::vector<int32_t> index(t.index.begin(), t.index.end()), first(static_cast<size_t>(in + 1), 0),
      tap_out(static_cast<size_t>(taps));
  std::vector<float> tap_weight(static_cast<size_t>(taps));
  for (int64_t k = 0; k < taps; ++k) ++first[size_t(t.index[k] + 1)];
  for (int64_t i = 0; i < in; ++i) first[size_t(i + 1)] += first[size_t(i)];
  std::vector<int32_t> fill(first.begin(), first.end() - 1);
  for (int64_t k = 0; k < taps; ++k) {
    const int32_t j = fill[size_t(t.index[k])]++;
    tap_out[size_t(j)] = int32_t(k / t.per_output), tap_weight[size_t(j)] = t.weight[k];
  }
  off.at[0] = append_ints(buf, index);
  off.at[1] = int64_t(buf.size()), buf.insert(buf.end(), t.weight.begin(), t.weight.end());
  off.at[2] = append_ints(buf, first);
  off.at[3] = append_ints(buf, tap_out);
  off.at[4] = int64_t(buf.size()), buf.insert(buf.end(), tap_weight.begin(), tap_weight.end());
  return a;
}

void point_at(cuda::ResampleAxis& a, const float* base, const TableOffsets& off) {
  if (a.kind != cuda::ResampleAxis::Table) return;
  a.index = reinterpret_cast<const int32_t*>(base + off.at[0]), a.weights = base + off.at[1];
  a.first = reinterpret_cast<const int32_t*>(base + off.at[2]), a.tap_out = reinterpret_cast<const int32_t*>(base + off.at[3]);
  a.tap_weight = base + off.at[4];
}
#endif

struct Resample {
  Taps ty, tx;
  int64_t in_h, in_w;
#if FASTDIFF_WITH_CUDA
  // Device form, set by prepare_device() for CUDA inputs. Table taps live in `tables`
  // (allocated on the device at op time, filled from `host` by the forward kernel, which
  // runs before any backward on the same stream).
  cuda::ResampleAxis dev_y, dev_x;
  TensorPtr tables;
  std::vector<float> host;

  void prepare_device(Device dev) {
    TableOffsets oy, ox;
    dev_y = device_axis(ty, in_h, host, oy);
    dev_x = device_axis(tx, in_w, host, ox);
    if (host.empty()) return;
    tables = empty({int64_t(host.size())}, dev);
    point_at(dev_y, tables->data(), oy);  // pointer arithmetic only: nothing on the host reads it
    point_at(dev_x, tables->data(), ox);
  }
#endif

  void forward_on(Device dev, const float* x, float* y, int64_t planes) const {
#if FASTDIFF_WITH_CUDA
    if (dev.type == DeviceType::CUDA) {
      cuda::set_device(dev.index);
      if (tables) cuda::copy_h2d(tables->data(), host.data(), int64_t(host.size()));
      return cuda::resample_forward(x, y, planes, dev_y, dev_x);
    }
#endif
    forward(x, y, planes);
  }

  void backward_on(Device dev, const float* gy, float* gx, int64_t planes) const {
#if FASTDIFF_WITH_CUDA
    if (dev.type == DeviceType::CUDA) {
      cuda::set_device(dev.index);
      return cuda::resample_backward(gy, gx, planes, dev_y, dev_x);
    }
#endif
    backward(gy, gx, planes);
  }
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
    ThreadPool::global().parallel_for_balanced(planes, 1, [&](int64_t p0, int64_t p1) {
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
    ThreadPool::global().parallel_for_balanced(planes, 1, [&](int64_t p0, int64_t p1) {
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
    ThreadPool::global().parallel_for_balanced(planes, 1, [&](int64_t p0, int64_t p1) {
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
    const Device dev = gy->device();
    launch(op, [=] { plan->backward_on(dev, gy->data(), gx->data(), planes); });
    return {gx};
  }
};

TensorPtr resample(const char* op, const TensorPtr& x, std::shared_ptr<Resample> r) {
  TensorPtr y = empty({x->shape[0], x->shape[1], r->out_h(), r->out_w()}, x->device());
  const int64_t planes = x->shape[0] * x->shape[1];
  const Device dev = x->device();
#if FASTDIFF_WITH_CUDA
  if (on_cuda(x)) r->prepare_device(dev);
#endif
  std::shared_ptr<const Resample> plan = r;
  launch(op, [=] { plan->forward_on(dev, x->data(), y->data(), planes); });
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
