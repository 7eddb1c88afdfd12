// Reductions over a set of axes. Each contiguous group of reduced axes becomes an
// (outer, R, inner) problem. Determinism: the reduced dimension is summed in a
// fixed order (fixed 16-lane partial sums, fixed 64K-element chunks combined in
// double), never split by thread count, so results are bitwise reproducible. CUDA
// reduces the same (outer, R, inner) problems with fixed-shape trees (cuda/reduce.cu).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/stream.h"
#include "core/threadpool.h"
#include "core/dispatch.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/elementwise.h"
#include "cuda/reduce.h"
#endif

namespace fd::ops {
namespace {

const char* reduce_name(Reduce k) {
  switch (k) {
    case Reduce::Sum: return "sum";
    case Reduce::Mean: return "mean";
    case Reduce::Max: return "max";
    case Reduce::Min: return "min";
  }
  return "reduce";
}

// Σ of n contiguous floats: 16 float lanes per 64K chunk, chunks added in double.
double sum_contiguous(const float* x, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  double total = 0;
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t m = std::min(kChunk, n - c);
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= m; i += 16)
      for (int j = 0; j < 16; ++j) acc[j] += x[c + i + j];
    float tail = 0;
    for (; i < m; ++i) tail += x[c + i];
    double chunk = tail;
    for (int j = 0; j < 16; ++j) chunk += acc[j];
    total += chunk;
  }
  return total;
}

// out[o, i] = reduce_r x[o, r, i].
void reduce_kernel(Reduce kind, const float* x, float* out, int64_t outer, int64_t R, int64_t inner) {
  const bool is_extreme = kind == Reduce::Max || kind == Reduce::Min;
  const float scale = kind == Reduce::Mean ? 1.0f / float(std::max<int64_t>(R, 1)) : 1.0f;
  if (inner == 1) {
    ThreadPool::global().parallel_for(outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(R, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* row = x + o * R;
        if (is_extreme) {
          float m = kind == Reduce::Max ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
          for (int64_t r = 0; r < R; ++r) {
            const float v = row[r];
            if (std::isnan(v) || (kind == Reduce::Max ? v > m : v < m)) m = v;
            if (std::isnan(m)) break;
          }
          out[o] = m;
        } else {
          out[o] = float(sum_contiguous(row, R)) * scale;
        }
      }
    });
    return;
  }
  ThreadPool::global().parallel_for(outer * ((inner + 255) / 256), 1, [&](int64_t t0, int64_t t1) {
    const int64_t tiles = (inner + 255) / 256;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / tiles, i0 = (t % tiles) * 256, i1 = std::min(inner, i0 + 256);
      float* dst = out + o * inner;
      const float* src = x + o * R * inner;
      for (int64_t i = i0; i < i1; ++i) dst[i] = is_extreme ? src[i] : 0.f;
      for (int64_t r = is_extreme ? 1 : 0; r < R; ++r) {
        const float* rowp = src + r * inner;
        if (kind == Reduce::Max) {
          for (int64_t i = i0; i < i1; ++i) dst[i] = (rowp[i] > dst[i] || std::isnan(rowp[i])) && !std::isnan(dst[i]) ? rowp[i] : dst[i];
        } else if (kind == Reduce::Min) {
          for (int64_t i = i0; i < i1; ++i) dst[i] = (rowp[i] < dst[i] || std::isnan(rowp[i])) && !std::isnan(dst[i]) ? rowp[i] : dst[i];
        } else {
          for (int64_t i = i0; i < i1; ++i) dst[i] += rowp[i];
        }
      }
      if (scale != 1.0f)
        for (int64_t i = i0; i < i1; ++i) dst[i] *= scale;
    }
  });
}

#if FASTDIFF_WITH_CUDA
// reduce_range only sees Sum, Max and Min (Mean is a Sum, scaled by the op).
cuda::ReduceOp cuda_reduce_op(Reduce kind) {
  return kind == Reduce::Max ? cuda::ReduceOp::Max : kind == Reduce::Min ? cuda::ReduceOp::Min : cuda::ReduceOp::Sum;
}
#endif

// h[i] = a[i] == b[i] ? 1 : 0
void equal_mask(int64_t n, const float* a, const float* b, float* h) {
  for (int64_t i = 0; i < n; ++i) h[i] = a[i] == b[i] ? 1.f : 0.f;
}

std::vector<int64_t> normalize_axes(const char* op, std::vector<int64_t> axes, int64_t ndim) {
  if (axes.empty())
    for (int64_t i = 0; i < ndim; ++i) axes.push_back(i);
  for (auto& a : axes) a = normalize_axis(op, a, ndim);
  std::sort(axes.begin(), axes.end());
  FD_CHECK(std::adjacent_find(axes.begin(), axes.end()) == axes.end(), ErrorCode::Shape, op, ": repeated axis");
  return axes;
}

Shape reduced_shape(const Shape& in, const std::vector<int64_t>& axes, bool keepdim) {
  Shape out;
  for (int64_t i = 0; i < int64_t(in.size()); ++i) {
    const bool reduced = std::binary_search(axes.begin(), axes.end(), i);
    if (!reduced) out.push_back(in[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// One reduction over a contiguous axis range [a0, a1] (no autograd).
TensorPtr reduce_range(Reduce kind, const TensorPtr& x, int64_t a0, int64_t a1) {
  int64_t outer = 1, R = 1, inner = 1;
  for (int64_t i = 0; i < x->dim(); ++i) (i < a0 ? outer : i <= a1 ? R : inner) *= x->shape[i];
  Shape shape = x->shape;
  for (int64_t i = a0; i <= a1; ++i) shape[i] = 1;
  FD_CHECK(R > 0 || kind == Reduce::Sum || kind == Reduce::Mean, ErrorCode::Shape, reduce_name(kind),
           ": cannot reduce an empty dimension of ", shape_str(x->shape));
  TensorPtr out = empty(shape, x->device());
  const Device dev = x->device();
  launch(reduce_name(kind), [=] {
    FD_ON_DEVICE(dev, reduce_kernel(kind, x->data(), out->data(), outer, R, inner),
                 cuda::reduce(cuda_reduce_op(kind), x->data(), out->data(), outer, R, inner));
  });
  return out;
}

struct ReduceBackward : Node {
  Reduce kind;
  Shape in_shape, kept_shape;  // kept_shape: output with keepdim
  int64_t count = 1;
  TensorPtr x, y;  // Max/Min only
  const char* name() const override { return reduce_name(kind); }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    TensorPtr gk = reshape(g[0], kept_shape);
    if (kind == Reduce::Sum) return {expand(gk, in_shape)};
    if (kind == Reduce::Mean) return {expand(scale(gk, 1.0f / float(count)), in_shape)};
    // Max/Min: the gradient is shared evenly by every position that attains the extreme.
    TensorPtr yk = reshape(y, kept_shape);
    TensorPtr hit = empty(in_shape, x->device());
    TensorPtr xs = x, ys = expand(yk, in_shape);
    const Device dev = x->device();
    launch(kind == Reduce::Max ? "max_backward" : "min_backward", [hit, xs, ys, dev] {
      FD_ON_DEVICE(dev, equal_mask(hit->numel(), xs->data(), ys->data(), hit->data()),
                   cuda::equal_mask(hit->numel(), xs->data(), ys->data(), hit->data()));
    });
    std::vector<int64_t> axes;
    for (size_t i = 0; i < in_shape.size(); ++i)
      if (kept_shape[i] == 1 && in_shape[i] != 1) axes.push_back(int64_t(i));
    TensorPtr ties = axes.empty() ? hit : reduce(Reduce::Sum, hit, axes, true);
    return {mul(hit, div(gk, ties))};
  }
  void release() override { x = y = nullptr; }
};

}  // namespace

TensorPtr reduce(Reduce kind, const TensorPtr& x, std::vector<int64_t> axes_in, bool keepdim) {
  const auto axes = normalize_axes(reduce_name(kind), axes_in, x->dim());
  TensorPtr cur = x;
  {
    NoGradGuard no_grad;
    // Reduce contiguous runs of axes from the last run to the first.
    for (int64_t i = int64_t(axes.size()) - 1; i >= 0;) {
      int64_t j = i;
      while (j > 0 && axes[j - 1] == axes[j] - 1) --j;
      cur = reduce_range(kind == Reduce::Mean ? Reduce::Sum : kind, cur, axes[j], axes[i]);
      i = j - 1;
    }
    if (axes.empty()) cur = contiguous_copy(x);
  }
  int64_t count = 1;
  for (int64_t a : axes) count *= x->shape[a];
  if (kind == Reduce::Mean) {
    NoGradGuard no_grad;
    cur = scale(cur, count > 0 ? 1.0f / float(count) : std::numeric_limits<float>::quiet_NaN());
  }
  const Shape kept = cur->shape;
  TensorPtr out = alias(cur, reduced_shape(x->shape, axes, keepdim));
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<ReduceBackward>();
    node->kind = kind, node->in_shape = x->shape, node->kept_shape = kept, node->count = count;
    if (kind == Reduce::Max || kind == Reduce::Min) node->x = save(x), node->y = save(out);
    record(node, {x}, {out});
  }
  return out;
}

TensorPtr var(const TensorPtr& x, std::vector<int64_t> axes, bool keepdim, int64_t correction) {
  const auto ax = normalize_axes("var", axes, x->dim());
  int64_t count = 1;
  for (int64_t a : ax) count *= x->shape[a];
  FD_CHECK(count - correction > 0, ErrorCode::Shape, "var: ", count, " values with correction ", correction,
           " leave no degrees of freedom (shape ", shape_str(x->shape), ")");
  // Two-pass (centered) formula: stable, and its gradient 2(x−μ)/(n−c) falls out of autograd.
  TensorPtr centered = sub(x, reduce(Reduce::Mean, x, ax, true));
  TensorPtr ss = reduce(Reduce::Sum, unary(Unary::Square, centered), ax, keepdim);
  return scale(ss, 1.0f / float(count - correction));
}

TensorPtr norm(const TensorPtr& x) {
  return unary(Unary::Sqrt, reduce(Reduce::Sum, unary(Unary::Square, x), {}, false));
}

}  // namespace fd::ops
