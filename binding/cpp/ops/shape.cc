// Shape ops. reshape is free (shared storage); permute, concat, slice, split and
// pad copy into a new contiguous tensor, each with its gradient beside it. CUDA
// kernels (cuda/shape.cu) take the same arguments as the CPU helpers here.
#include <algorithm>
#include <cstring>

#include "core/stream.h"
#include "core/threadpool.h"
#include "core/dispatch.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/shape.h"
#endif

namespace fd::ops {
namespace {

struct ReshapeBackward : Node {
  Shape in_shape;
  const char* name() const override { return "reshape"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    return {g[0] ? reshape(g[0], in_shape) : nullptr};
  }
};

struct PermuteBackward : Node {
  std::vector<int64_t> inverse;
  const char* name() const override { return "permute"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    return {g[0] ? permute(g[0], inverse) : nullptr};
  }
};

// Copies a box: dst[outer][0:len] = src[outer·src_stride + src_offset ...] for
// `outer` rows of `len` contiguous floats.
void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t len) {
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(len, 1));
  ThreadPool::global().parallel_for_balanced(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(dst + r * dst_stride, src + r * src_stride, size_t(len) * 4);
  });
}

struct SliceBackward : Node {
  Shape in_shape;
  int64_t axis, start;
  const char* name() const override { return "slice"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    std::vector<int64_t> pads(in_shape.size() * 2, 0);
    const int64_t from_last = int64_t(in_shape.size()) - 1 - axis;
    pads[2 * from_last] = start;
    pads[2 * from_last + 1] = in_shape[axis] - start - g[0]->shape[axis];
    return {pad(g[0], pads, 0.f)};
  }
};

struct ConcatBackward : Node {
  std::vector<int64_t> sizes;
  int64_t axis;
  const char* name() const override { return "concat"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return std::vector<TensorPtr>(sizes.size());
    return split(g[0], sizes, axis);
  }
};

struct SplitBackward : Node {
  Shape in_shape;
  Device device;
  std::vector<int64_t> sizes;
  int64_t axis;
  const char* name() const override { return "split"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    std::vector<TensorPtr> parts;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (g[i]) {
        parts.push_back(g[i]);
      } else {
        Shape s = in_shape;
        s[axis] = sizes[i];
        parts.push_back(full(s, 0.f, device));
      }
    }
    return {concat(parts, axis)};
  }
};

struct PadBackward : Node {
  Shape in_shape;
  std::vector<int64_t> pads;
  const char* name() const override { return "pad"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    // Slice each padded dim back to the input's extent.
    TensorPtr cur = g[0];
    const int64_t nd = int64_t(in_shape.size());
    for (int64_t k = 0; k * 2 < int64_t(pads.size()); ++k) {
      const int64_t axis = nd - 1 - k;
      if (pads[2 * k] != 0 || pads[2 * k + 1] != 0) cur = slice(cur, axis, pads[2 * k], pads[2 * k] + in_shape[axis]);
    }
    return {cur};
  }
};

// y = x permuted (y's dim i is x's dim perm[i]): rows of y's innermost dim gathered with x's stride.
void permute_cpu(const float* src, const Shape& in_shape, const std::vector<int64_t>& perm, float* dst) {
  const int64_t nd = int64_t(in_shape.size());
  const auto in_strides = contiguous_strides(in_shape);
  Shape shape(nd);
  std::vector<int64_t> st(nd);  // source stride for each output dim
  for (int64_t i = 0; i < nd; ++i) shape[i] = in_shape[perm[i]], st[i] = in_strides[perm[i]];
  const int64_t inner = nd ? shape[nd - 1] : 1, inner_stride = nd ? st[nd - 1] : 1;
  const int64_t rows = inner ? shape_numel(shape) / inner : 0;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1));
  ThreadPool::global().parallel_for_balanced(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off = 0, rem = r;
      for (int64_t d = nd - 2; d >= 0; --d) {
        off += (rem % shape[d]) * st[d];
        rem /= shape[d];
      }
      float* o = dst + r * inner;
      const float* s = src + off;
      for (int64_t i = 0; i < inner; ++i) o[i] = s[i * inner_stride];
    }
  });
}

// y (x's shape grown by before + after per dim) = value, with x copied in at `before`.
void pad_cpu(const float* src, const Shape& in_shape, const std::vector<int64_t>& before,
             const std::vector<int64_t>& after, float value, float* dst) {
  const int64_t nd = int64_t(in_shape.size());
  Shape shape(nd);
  for (int64_t d = 0; d < nd; ++d) shape[d] = in_shape[d] + before[d] + after[d];
  const int64_t n = shape_numel(shape), in_n = shape_numel(in_shape);
  for (int64_t i = 0; i < n; ++i) dst[i] = value;
  if (in_n == 0) return;
  const auto ys = contiguous_strides(shape);
  const int64_t inner = nd ? in_shape[nd - 1] : 1;
  const int64_t rows = in_n / std::max<int64_t>(inner, 1);
  // Copy each source row to its place.
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, off = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      off += (rem % in_shape[d] + before[d]) * ys[d];
      rem /= in_shape[d];
    }
    const int64_t b = nd ? before[nd - 1] : 0;
    for (int64_t j = 0; j < inner; ++j) dst[off + b + j] = src[r * inner + j];
  }
}

}  // namespace

TensorPtr reshape(const TensorPtr& x, Shape shape) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      FD_CHECK(infer < 0, ErrorCode::Shape, "reshape: more than one -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      FD_CHECK(shape[i] >= 0, ErrorCode::Shape, "reshape: invalid dimension in ", shape_str(shape));
      known *= shape[i];
    }
  }
  const int64_t n = x->numel();
  if (infer >= 0) {
    FD_CHECK(known > 0 && n % known == 0, ErrorCode::Shape, "reshape: cannot reshape ", shape_str(x->shape), " into ",
             shape_str(shape));
    shape[infer] = n / known;
  }
  FD_CHECK(shape_numel(shape) == n, ErrorCode::Shape, "reshape: cannot reshape ", shape_str(x->shape), " (", n,
           " elements) into ", shape_str(shape));
  TensorPtr y = alias(x, shape);
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<ReshapeBackward>();
    node->in_shape = x->shape;
    record(node, {x}, {y});
  }
  return y;
}

TensorPtr permute(const TensorPtr& x, const std::vector<int64_t>& perm_in) {
  const int64_t nd = x->dim();
  FD_CHECK(int64_t(perm_in.size()) == nd, ErrorCode::Shape, "permute: ", perm_in.size(), " axes given for ",
           shape_str(x->shape));
  std::vector<int64_t> perm(nd), inverse(nd, -1);
  for (int64_t i = 0; i < nd; ++i) {
    perm[i] = normalize_axis("permute", perm_in[i], nd);
    FD_CHECK(inverse[perm[i]] < 0, ErrorCode::Shape, "permute: axis ", perm_in[i], " repeated");
    inverse[perm[i]] = i;
  }
  Shape shape(nd);
  for (int64_t i = 0; i < nd; ++i) shape[i] = x->shape[perm[i]];
  TensorPtr y = empty(shape, x->device());
  const Device dev = x->device();
  launch("permute", [=] {
    FD_ON_DEVICE(dev, permute_cpu(x->data(), x->shape, perm, y->data()),
                 cuda::permute(x->data(), x->shape, perm, y->data()));
  });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<PermuteBackward>();
    node->inverse = inverse;
    record(node, {x}, {y});
  }
  return y;
}

TensorPtr transpose(const TensorPtr& x, int64_t a, int64_t b) {
  std::vector<int64_t> perm(x->dim());
  for (int64_t i = 0; i < x->dim(); ++i) perm[i] = i;
  std::swap(perm[normalize_axis("transpose", a, x->dim())], perm[normalize_axis("transpose", b, x->dim())]);
  return permute(x, perm);
}

TensorPtr concat(const std::vector<TensorPtr>& xs, int64_t axis_in) {
  FD_CHECK(!xs.empty(), ErrorCode::Argument, "concat: no tensors given");
  const int64_t nd = xs[0]->dim();
  const int64_t axis = normalize_axis("concat", axis_in, nd);
  Shape shape = xs[0]->shape;
  shape[axis] = 0;
  std::vector<int64_t> sizes;
  for (const auto& t : xs) {
    check_same_device("concat", xs[0], t);
    bool ok = t->dim() == nd;
    for (int64_t i = 0; ok && i < nd; ++i) ok = i == axis || t->shape[i] == xs[0]->shape[i];
    FD_CHECK(ok, ErrorCode::Shape, "concat: ", shape_str(t->shape), " does not match ", shape_str(xs[0]->shape),
             " outside axis ", axis_in);
    shape[axis] += t->shape[axis];
    sizes.push_back(t->shape[axis]);
  }
  TensorPtr y = empty(shape, xs[0]->device());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[i];
  for (int64_t i = axis + 1; i < nd; ++i) inner *= shape[i];
  const Device dev = y->device();
  launch("concat", [=] {
    int64_t at = 0;
    for (const auto& t : xs) {
      const int64_t len = t->shape[axis] * inner;
      FD_ON_DEVICE(dev, copy_rows(t->data(), len, y->data() + at, shape[axis] * inner, outer, len),
                   cuda::copy_rows(t->data(), len, y->data() + at, shape[axis] * inner, outer, len));
      at += len;
    }
  });
  if (any_requires_grad(xs)) {
    auto node = std::make_shared<ConcatBackward>();
    node->sizes = sizes, node->axis = axis;
    record(node, xs, {y});
  }
  return y;
}

TensorPtr slice(const TensorPtr& x, int64_t axis_in, int64_t start, int64_t end) {
  const int64_t axis = normalize_axis("slice", axis_in, x->dim());
  const int64_t n = x->shape[axis];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = x->shape;
  shape[axis] = end - start;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[i];
  for (int64_t i = axis + 1; i < x->dim(); ++i) inner *= shape[i];
  TensorPtr y = empty(shape, x->device());
  const Device dev = x->device();
  launch("slice", [=] {
    const float* src = x->data() + start * inner;
    const int64_t len = (end - start) * inner;
    FD_ON_DEVICE(dev, copy_rows(src, n * inner, y->data(), len, outer, len),
                 cuda::copy_rows(src, n * inner, y->data(), len, outer, len));
  });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<SliceBackward>();
    node->in_shape = x->shape, node->axis = axis, node->start = start;
    record(node, {x}, {y});
  }
  return y;
}

std::vector<TensorPtr> split(const TensorPtr& x, const std::vector<int64_t>& sizes, int64_t axis_in) {
  const int64_t axis = normalize_axis("split", axis_in, x->dim());
  int64_t total = 0;
  for (int64_t s : sizes) {
    FD_CHECK(s >= 0, ErrorCode::Shape, "split: negative size ", s);
    total += s;
  }
  FD_CHECK(total == x->shape[axis], ErrorCode::Shape, "split: sizes add up to ", total, " but axis ", axis_in, " of ",
           shape_str(x->shape), " has ", x->shape[axis]);
  std::vector<TensorPtr> parts;
  {
    NoGradGuard no_grad;
    int64_t at = 0;
    for (int64_t s : sizes) {
      parts.push_back(slice(x, axis, at, at + s));
      at += s;
    }
  }
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<SplitBackward>();
    node->in_shape = x->shape, node->device = x->device(), node->sizes = sizes, node->axis = axis;
    record(node, {x}, parts);
  }
  return parts;
}

TensorPtr pad(const TensorPtr& x, const std::vector<int64_t>& pads, float value) {
  const int64_t nd = x->dim();
  FD_CHECK(pads.size() % 2 == 0 && int64_t(pads.size()) <= 2 * nd, ErrorCode::Shape, "pad: ", pads.size(),
           " padding values for ", shape_str(x->shape), " (need pairs, at most 2 per dimension)");
  Shape shape = x->shape;
  std::vector<int64_t> before(nd, 0);
  for (int64_t k = 0; k * 2 < int64_t(pads.size()); ++k) {
    const int64_t axis = nd - 1 - k;
    before[axis] = pads[2 * k];
    shape[axis] += pads[2 * k] + pads[2 * k + 1];
    FD_CHECK(pads[2 * k] >= 0 && pads[2 * k + 1] >= 0, ErrorCode::Shape, "pad: padding must be non-negative (got ",
             pads[2 * k], ", ", pads[2 * k + 1], " for axis ", axis, " of ", shape_str(x->shape), ")");
  }
  std::vector<int64_t> after(nd, 0);
  for (int64_t d = 0; d < nd; ++d) after[d] = shape[d] - x->shape[d] - before[d];
  TensorPtr y = empty(shape, x->device());
  const Device dev = x->device();
  launch("pad", [=] {
    FD_ON_DEVICE(dev, pad_cpu(x->data(), x->shape, before, after, value, y->data()),
                 cuda::pad(x->data(), x->shape, before, after, value, y->data()));
  });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<PadBackward>();
    node->in_shape = x->shape, node->pads = pads;
    record(node, {x}, {y});
  }
  return y;
}

}  // namespace fd::ops
