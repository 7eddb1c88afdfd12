// Elementwise ops with NumPy broadcasting. Forward: unary ops go straight to
// kernels::unary; binary ops merge the broadcast dims first. On the CPU the merged
// loop nest is decomposed into runs where each operand is either contiguous or a
// broadcast scalar, each run handled by kernels::binary; on CUDA a same-shape or
// scalar case goes to the contiguous kernel and anything else to one strided
// broadcast kernel over the merged dims.
#include <algorithm>

#include "core/dispatch.h"
#include "core/stream.h"
#include "core/threadpool.h"
#include "core/dispatch.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/elementwise.h"
#include "cuda/vector.h"
#endif

namespace fd::ops {
namespace {

using kernels::binary_name;
using kernels::unary_name;

bool has_gradient(Unary op) { return op != Unary::Sign && op != Unary::IsNan; }

struct UnaryBackward : Node {
  Unary op;
  float a, b;
  TensorPtr x, y;
  const char* name() const override { return unary_name(op); }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr};
    TensorPtr gx = empty(x->shape, x->device());
    TensorPtr gy = g[0], xs = x, ys = y;
    const Unary o = op;
    const float aa = a, bb = b;
    [[maybe_unused]] const Device dev = x->device();  // unused in CPU-only builds
    launch(name(), [=] {
      FD_DISPATCH(dev, unary_backward, o, gx->numel(), xs->data(), ys->data(), gy->data(), gx->data(), aa, bb);
    });
    return {gx};
  }
  void release() override { x = y = nullptr; }
};

// Strides (in elements) of `shape` broadcast to `out` (0 along broadcast dims).
std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  const auto own = contiguous_strides(shape);
  const size_t lead = out.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) strides[lead + i] = shape[i] == 1 ? 0 : own[i];
  return strides;
}

// The output dims of an N-ary broadcast, merged where every operand allows it (two
// adjacent dims merge when each operand's outer stride is its inner stride times the
// inner size), size-1 dims dropped. strides[k][d]: operand k's stride along dim d.
struct MergedBroadcast {
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> strides;
};

MergedBroadcast merge_broadcast(const Shape& out, const std::vector<Shape>& inputs) {
  std::vector<std::vector<int64_t>> st;
  for (const auto& s : inputs) st.push_back(broadcast_strides(s, out));
  MergedBroadcast m;
  m.strides.resize(inputs.size());
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    if (!m.dims.empty()) {
      bool ok = true;
      for (size_t k = 0; k < inputs.size(); ++k)
        if (m.strides[k].back() != st[k][d] * out[d]) ok = false;
      if (ok) {
        m.dims.back() *= out[d];
        for (size_t k = 0; k < inputs.size(); ++k) m.strides[k].back() = st[k][d];
        continue;
      }
    }
    m.dims.push_back(out[d]);
    for (size_t k = 0; k < inputs.size(); ++k) m.strides[k].push_back(st[k][d]);
  }
  return m;
}

// CPU loop nest over merged dims: the innermost dim becomes a run when every operand
// is contiguous (stride 1) or a broadcast scalar (stride 0) along it.
struct BroadcastPlan {
  std::vector<int64_t> dims;                  // outer dims (innermost run excluded)
  std::vector<std::vector<int64_t>> strides;  // per operand, per outer dim
  int64_t run = 1;                            // innermost run length
  std::vector<int64_t> run_stride;            // per operand: 0 or 1
  int64_t outer = 1;

  // Offsets of operand k for outer index `o`.
  void offsets(int64_t o, int64_t* out) const {
    for (size_t k = 0; k < strides.size(); ++k) out[k] = 0;
    for (int64_t d = int64_t(dims.size()) - 1; d >= 0; --d) {
      const int64_t i = o % dims[d];
      o /= dims[d];
      for (size_t k = 0; k < strides.size(); ++k) out[k] += i * strides[k][d];
    }
  }
};

BroadcastPlan plan_broadcast(const MergedBroadcast& m) {
  std::vector<int64_t> mdims = m.dims;
  std::vector<std::vector<int64_t>> mstrides = m.strides;
  BroadcastPlan p;
  p.run_stride.assign(mstrides.size(), 0);
  if (!mdims.empty()) {
    bool unit = true;
    for (const auto& s : mstrides) unit = unit && (s.back() == 0 || s.back() == 1);
    if (unit) {
      p.run = mdims.back();
      for (size_t k = 0; k < mstrides.size(); ++k) p.run_stride[k] = mstrides[k].back();
      mdims.pop_back();
      for (auto& s : mstrides) s.pop_back();
    }
  }
  p.dims = mdims;
  p.strides = mstrides;
  for (int64_t d : mdims) p.outer *= d;
  return p;
}

// True when the merged problem is one contiguous-or-scalar run (the flat kernels' case).
bool is_flat(const MergedBroadcast& m) {
  if (m.dims.size() > 1) return false;
  for (const auto& s : m.strides)
    if (!s.empty() && s[0] != 0 && s[0] != 1) return false;
  return true;
}
int64_t flat_stride(const MergedBroadcast& m, size_t k) { return m.dims.empty() ? 0 : m.strides[k][0]; }

// share = 1 where a wins, 0.5 at ties, 0 where b wins (d = a − b).
void minmax_share(int64_t n, const float* d, float* s, bool is_max) {
  for (int64_t i = 0; i < n; ++i) s[i] = d[i] == 0.f ? 0.5f : ((d[i] > 0.f) == is_max ? 1.f : 0.f);
}

struct BinaryBackward : Node {
  Binary op;
  TensorPtr a, b;
  Shape a_shape, b_shape;
  bool need_a = false, need_b = false;
  const char* name() const override { return binary_name(op); }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override;
  void release() override { a = b = nullptr; }
};

std::vector<TensorPtr> BinaryBackward::apply(const std::vector<TensorPtr>& g) {
  const TensorPtr& gy = g[0];
  if (!gy) return {nullptr, nullptr};
  TensorPtr ga, gb;
  switch (op) {
    case Binary::Add:
      ga = gy, gb = gy;
      break;
    case Binary::Sub:
      ga = gy, gb = need_b ? unary(Unary::Neg, gy) : nullptr;
      break;
    case Binary::Mul:
      ga = need_a ? mul(gy, b) : nullptr;
      gb = need_b ? mul(gy, a) : nullptr;
      break;
    case Binary::Div:
      ga = need_a ? div(gy, b) : nullptr;
      // d(a/b)/db = −a/b²
      gb = need_b ? unary(Unary::Neg, div(mul(gy, a), unary(Unary::Square, b))) : nullptr;
      break;
    case Binary::Pow: {
      TensorPtr y = binary(Binary::Pow, a, b);
      // d(a^b)/da = b·a^(b−1) = b·y/a (guarded: use pow(a, b−1) directly)
      ga = need_a ? mul(gy, mul(b, binary(Binary::Pow, a, unary(Unary::Affine, b, 1.f, -1.f)))) : nullptr;
      gb = need_b ? mul(gy, mul(y, unary(Unary::Log, a))) : nullptr;
      break;
    }
    case Binary::Maximum:
    case Binary::Minimum: {
      // Like PyTorch: the gradient goes to the selected input; ties split it in half.
      // share = 1 where a wins, 0.5 at ties, 0 where b wins.
      const bool is_max = op == Binary::Maximum;
      TensorPtr diff = sub(a, b);
      TensorPtr share = empty(diff->shape, diff->device());
      const Device dev = diff->device();
      launch(is_max ? "maximum_backward" : "minimum_backward", [diff, share, is_max, dev] {
        FD_ON_DEVICE(dev, minmax_share(share->numel(), diff->data(), share->data(), is_max),
                     cuda::minmax_share(share->numel(), diff->data(), share->data(), is_max));
      });
      ga = need_a ? mul(gy, share) : nullptr;
      gb = need_b ? mul(gy, unary(Unary::Affine, share, -1.f, 1.f)) : nullptr;
      break;
    }
    default:
      fail(ErrorCode::Internal, "binary backward: unknown op");
  }
  return {ga && need_a ? sum_to(ga, a_shape) : nullptr, gb && need_b ? sum_to(gb, b_shape) : nullptr};
}

// The CPU loop nest of an N-operand broadcast: the outer index space in parallel, each
// iteration handing `run(p, off, o)` operand offsets `off` for output run `o` (p.run values).
template <size_t N, typename Run>
void for_each_run(const MergedBroadcast& m, Run run) {
  const BroadcastPlan p = plan_broadcast(m);
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(p.run, 1));
  ThreadPool::global().parallel_for_balanced(p.outer, grain, [&](int64_t o0, int64_t o1) {
    int64_t off[N];
    for (int64_t o = o0; o < o1; ++o) {
      p.offsets(o, off);
      run(p, off, o);
    }
  });
}

void binary_cpu(Binary op, const MergedBroadcast& m, const float* pa, const float* pb, float* po) {
  for_each_run<2>(m, [&](const BroadcastPlan& p, const int64_t* off, int64_t o) {
    kernels::binary(op, p.run, pa + off[0], p.run_stride[0], pb + off[1], p.run_stride[1], po + o * p.run);
  });
}

void run_binary(Binary op, const TensorPtr& a, const TensorPtr& b, const TensorPtr& out) {
  const Device dev = out->device();
  if (a->shape == out->shape && b->shape == out->shape) {
    FD_DISPATCH(dev, binary, op, out->numel(), a->data(), 1, b->data(), 1, out->data());
    return;
  }
  const MergedBroadcast m = merge_broadcast(out->shape, {a->shape, b->shape});
  if (is_flat(m)) {
    FD_DISPATCH(dev, binary, op, out->numel(), a->data(), flat_stride(m, 0), b->data(), flat_stride(m, 1), out->data());
    return;
  }
  FD_ON_DEVICE(dev, binary_cpu(op, m, a->data(), b->data(), out->data()),
               cuda::strided_binary(op, m.dims, m.strides, a->data(), b->data(), out->data()));
}

void where_cpu(const MergedBroadcast& m, const float* pc, const float* pa, const float* pb, float* po) {
  for_each_run<3>(m, [&](const BroadcastPlan& p, const int64_t* off, int64_t o) {
    const int64_t sc = p.run_stride[0], sa = p.run_stride[1], sb = p.run_stride[2];
    const float *c = pc + off[0], *x = pa + off[1], *y = pb + off[2];
    float* dst = po + o * p.run;
    for (int64_t i = 0; i < p.run; ++i) dst[i] = c[i * sc] != 0.f ? x[i * sa] : y[i * sb];
  });
}

void expand_cpu(const MergedBroadcast& m, const float* px, float* po) {
  for_each_run<1>(m, [&](const BroadcastPlan& p, const int64_t* off, int64_t o) {
    float* dst = po + o * p.run;
    if (p.run_stride[0]) std::copy(px + off[0], px + off[0] + p.run, dst);
    else std::fill(dst, dst + p.run, px[off[0]]);
  });
}

struct WhereBackward : Node {
  TensorPtr cond;
  Shape a_shape, b_shape;
  const char* name() const override { return "where"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr, nullptr};
    TensorPtr zero = full({1}, 0.f, g[0]->device());
    return {nullptr, sum_to(where(cond, g[0], zero), a_shape), sum_to(where(cond, zero, g[0]), b_shape)};
  }
  void release() override { cond = nullptr; }
};

// saved: x and y (each only when the other needs its gradient)
struct MulAddBackward : Node {
  TensorPtr x, y;
  Shape x_shape, y_shape, z_shape;
  bool need_x = false, need_y = false, need_z = false;
  const char* name() const override { return "mul_add"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr, nullptr};
    return {need_x ? sum_to(mul(g[0], y), x_shape) : nullptr, need_y ? sum_to(mul(g[0], x), y_shape) : nullptr,
            need_z ? sum_to(g[0], z_shape) : nullptr};
  }
  void release() override { x = y = nullptr; }
};

void mul_add_cpu(const MergedBroadcast& m, const float* px, const float* py, const float* pz, float* po) {
  if (is_flat(m)) {  // one run: the kernel threads it
    const int64_t n = m.dims.empty() ? 1 : m.dims[0];
    kernels::mul_add(n, px, flat_stride(m, 0), py, flat_stride(m, 1), pz, flat_stride(m, 2), po);
    return;
  }
  for_each_run<3>(m, [&](const BroadcastPlan& p, const int64_t* off, int64_t o) {
    kernels::mul_add(p.run, px + off[0], p.run_stride[0], py + off[1], p.run_stride[1], pz + off[2], p.run_stride[2],
                     po + o * p.run);
  });
}

struct SumToBackward : Node {
  Shape in_shape;
  const char* name() const override { return "broadcastTo"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    return {g[0] ? sum_to(g[0], in_shape) : nullptr};
  }
};

}  // namespace

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    FD_CHECK(da == db || da == 1 || db == 1, ErrorCode::Shape, op, ": shapes ", shape_str(a), " and ", shape_str(b),
             " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

TensorPtr unary(Unary op, const TensorPtr& x, float a, float b) {
  TensorPtr y = empty(x->shape, x->device());
  [[maybe_unused]] const Device dev = x->device();  // unused in CPU-only builds
  launch(unary_name(op), [=] { FD_DISPATCH(dev, unary, op, y->numel(), x->data(), y->data(), a, b); });
  if (has_gradient(op) && any_requires_grad({&x})) {
    auto node = std::make_shared<UnaryBackward>();
    node->op = op, node->a = a, node->b = b;
    node->x = save(x), node->y = save(y);
    record(node, {x}, {y});
  }
  return y;
}

TensorPtr binary(Binary op, const TensorPtr& a, const TensorPtr& b) {
  check_same_device(binary_name(op), a, b);
  TensorPtr out = empty(broadcast_shapes(binary_name(op), a->shape, b->shape), a->device());
  launch(binary_name(op), [=] { run_binary(op, a, b, out); });
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<BinaryBackward>();
    node->op = op;
    node->need_a = a->needs_grad(), node->need_b = b->needs_grad();
    node->a_shape = a->shape, node->b_shape = b->shape;
    if (op != Binary::Add && op != Binary::Sub) node->a = save(a), node->b = save(b);
    record(node, {a, b}, {out});
  }
  return out;
}

TensorPtr add(const TensorPtr& a, const TensorPtr& b) { return binary(Binary::Add, a, b); }
TensorPtr sub(const TensorPtr& a, const TensorPtr& b) { return binary(Binary::Sub, a, b); }
TensorPtr mul(const TensorPtr& a, const TensorPtr& b) { return binary(Binary::Mul, a, b); }
TensorPtr div(const TensorPtr& a, const TensorPtr& b) { return binary(Binary::Div, a, b); }
TensorPtr scale(const TensorPtr& x, float s) { return unary(Unary::Affine, x, s, 0.f); }

// The merged loop dims of a three-operand broadcast (on one device); *out: its output.
static MergedBroadcast broadcast3(const char* op, const TensorPtr& a, const TensorPtr& b, const TensorPtr& c,
                                  TensorPtr* out) {
  check_same_device(op, a, b);
  check_same_device(op, a, c);
  const Shape shape = broadcast_shapes(op, broadcast_shapes(op, a->shape, b->shape), c->shape);
  *out = empty(shape, a->device());
  return merge_broadcast(shape, {a->shape, b->shape, c->shape});
}

TensorPtr where(const TensorPtr& cond, const TensorPtr& a, const TensorPtr& b) {
  TensorPtr out;
  const MergedBroadcast m = broadcast3("where", cond, a, b, &out);
  const Device dev = a->device();
  launch("where", [=] {
    FD_ON_DEVICE(dev, where_cpu(m, cond->data(), a->data(), b->data(), out->data()),
                 cuda::strided_where(m.dims, m.strides, cond->data(), a->data(), b->data(), out->data()));
  });
  if (any_requires_grad({&a, &b})) {
    auto node = std::make_shared<WhereBackward>();
    node->cond = save(cond);
    node->a_shape = a->shape, node->b_shape = b->shape;
    record(node, {nullptr, a, b}, {out});
  }
  return out;
}

TensorPtr mul_add(const TensorPtr& x, const TensorPtr& y, const TensorPtr& z) {
  TensorPtr out;
  const MergedBroadcast m = broadcast3("mul_add", x, y, z, &out);
  const Device dev = x->device();
  launch("mul_add", [=] {
    FD_ON_DEVICE(dev, mul_add_cpu(m, x->data(), y->data(), z->data(), out->data()),
                 cuda::strided_mul_add(m.dims, m.strides, x->data(), y->data(), z->data(), out->data()));
  });
  if (any_requires_grad({&x, &y, &z})) {
    auto node = std::make_shared<MulAddBackward>();
    node->need_x = x->needs_grad(), node->need_y = y->needs_grad(), node->need_z = z->needs_grad();
    node->x_shape = x->shape, node->y_shape = y->shape, node->z_shape = z->shape;
    if (node->need_y) node->x = save(x);
    if (node->need_x) node->y = save(y);
    record(node, {x, y, z}, {out});
  }
  return out;
}

TensorPtr sum_to(const TensorPtr& g, const Shape& shape) {
  if (g->shape == shape) return g;
  std::vector<int64_t> axes;
  const size_t lead = g->shape.size() - shape.size();
  for (size_t i = 0; i < g->shape.size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && g->shape[i] != 1)) axes.push_back(int64_t(i));
  TensorPtr s = axes.empty() ? g : reduce(Reduce::Sum, g, axes, true);
  return reshape(s, shape);
}

TensorPtr expand(const TensorPtr& x, const Shape& shape) {
  const Shape out_shape = broadcast_shapes("broadcastTo", x->shape, shape);
  FD_CHECK(out_shape == shape, ErrorCode::Shape, "broadcastTo: cannot broadcast ", shape_str(x->shape), " to ",
           shape_str(shape));
  TensorPtr out = empty(shape, x->device());
  const MergedBroadcast m = merge_broadcast(shape, {x->shape});
  const Device dev = x->device();
  launch("broadcastTo", [=] {
    FD_ON_DEVICE(dev, expand_cpu(m, x->data(), out->data()),
                 cuda::strided_copy(m.dims, m.strides, x->data(), out->data()));
  });
  if (any_requires_grad({&x})) {
    auto node = std::make_shared<SumToBackward>();
    node->in_shape = x->shape;
    record(node, {x}, {out});
  }
  return out;
}

}  // namespace fd::ops
