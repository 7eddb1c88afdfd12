// JS entry points of the op set: read arguments, call fd::ops, wrap the result.
// Option objects are validated in TypeScript (lib/); here only types and shapes.
#include <cmath>

#include "core/stream.h"
#include "glue.h"
#include "ops/ops.h"

namespace fd::binding {
namespace {

using Info = const Napi::CallbackInfo&;
using Handler = Napi::Value (*)(const Args&);

template <Handler H>
Napi::Value entry(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, static_cast<const char*>(info.Data())};
    return H(a);
  });
}

// Parses the op name; returns the name's static storage so errors say "exp", not "unary".
const char* unary_op(const Args& a, size_t i, ops::Unary* out) {
  const std::string name = a.string(i, "op");
  FD_CHECK(kernels::parse_unary(name.c_str(), out), ErrorCode::Argument, "unary: unknown op '", name, "'");
  return kernels::unary_name(*out);
}

const char* binary_op(const Args& a, size_t i, ops::Binary* out) {
  const std::string name = a.string(i, "op");
  FD_CHECK(kernels::parse_binary(name.c_str(), out), ErrorCode::Argument, "binary: unknown op '", name, "'");
  return kernels::binary_name(*out);
}

// ---- creation ----
Napi::Value FromData(const Args& a) {
  const Shape shape = a.shape(1, "shape");
  FD_CHECK(a.info[0].IsTypedArray() && a.info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array,
           ErrorCode::Argument, "tensor: data must be a Float32Array");
  auto arr = a.info[0].As<Napi::Float32Array>();
  FD_CHECK(int64_t(arr.ElementLength()) == shape_numel(shape), ErrorCode::Shape, "tensor: ", arr.ElementLength(),
           " values do not fill shape ", shape_str(shape));
  return wrap(a.env(), ops::from_data(arr.Data(), shape));
}
Napi::Value Full(const Args& a) {
  return wrap(a.env(), ops::full(a.shape(0, "shape"), float(a.number(1, "value")), a.device(2, "device")));
}
Napi::Value Arange(const Args& a) {
  return wrap(a.env(), ops::arange(a.number(0, "start"), a.number(1, "end"), a.number(2, "step")));
}
Napi::Value Rand(const Args& a) {
  return wrap(a.env(), ops::rand(a.shape(0, "shape"), a.uint64(1, "seed"), a.uint64(2, "offset"),
                                 float(a.number(3, "low")), float(a.number(4, "high")), a.device(5, "device")));
}
Napi::Value Randn(const Args& a) {
  return wrap(a.env(), ops::randn(a.shape(0, "shape"), a.uint64(1, "seed"), a.uint64(2, "offset"),
                                  float(a.number(3, "mean")), float(a.number(4, "std")), a.device(5, "device")));
}
Napi::Value ToDevice(const Args& a) { return wrap(a.env(), ops::to_device(a.tensor(0, "x"), a.device(1, "device"))); }
// Moves a tensor's storage to another device in place, so every handle sharing it (a
// network's parameters and the JS tensors the user holds) follows. Waits for queued
// kernels first: they read the storage through the tensor when they run.
Napi::Value MoveTo(const Args& a) {
  const TensorPtr t = a.tensor(0, "x");
  const Device device = a.device(1, "device");
  if (t->device() == device) return a.env().Undefined();
  FD_CHECK(!t->grad_fn, ErrorCode::Argument, "moveTo: only leaf tensors (parameters) move in place; use to()");
  current_stream().synchronize();
  const TensorPtr moved = ops::to_device(alias(t, t->shape), device);
  const TensorPtr grad = t->grad ? ops::to_device(alias(t->grad, t->grad->shape), device) : nullptr;
  current_stream().synchronize();
  t->storage = moved->storage;
  t->offset = moved->offset;
  t->grad = grad;
  return a.env().Undefined();
}
Napi::Value Clone(const Args& a) { return wrap(a.env(), ops::contiguous_copy(a.tensor(0, "x"))); }
Napi::Value Copy(const Args& a) {
  ops::copy_(a.tensor(0, "dst"), a.tensor(1, "src"));
  return a.env().Undefined();
}

// ---- elementwise ----
Napi::Value Unary(const Args& args) {
  ops::Unary op;
  const Args a{args.info, unary_op(args, 0, &op)};
  return wrap(a.env(), ops::unary(op, a.tensor(1, "x"), float(a.number_or(2, "a", 0)), float(a.number_or(3, "b", 0))));
}
Napi::Value Binary(const Args& args) {
  ops::Binary op;
  const Args a{args.info, binary_op(args, 0, &op)};
  return wrap(a.env(), ops::binary(op, a.tensor(1, "a"), a.tensor(2, "b")));
}
Napi::Value Where(const Args& a) {
  return wrap(a.env(), ops::where(a.tensor(0, "cond"), a.tensor(1, "a"), a.tensor(2, "b")));
}
Napi::Value MulAdd(const Args& a) {
  return wrap(a.env(), ops::mul_add(a.tensor(0, "x"), a.tensor(1, "y"), a.tensor(2, "z")));
}
Napi::Value BroadcastTo(const Args& a) { return wrap(a.env(), ops::expand(a.tensor(0, "x"), a.shape(1, "shape"))); }

// ---- reductions ----
Napi::Value Reduce(const Args& a) {
  const std::string kind = a.string(0, "kind");
  ops::Reduce r;
  if (kind == "sum") r = ops::Reduce::Sum;
  else if (kind == "mean") r = ops::Reduce::Mean;
  else if (kind == "max") r = ops::Reduce::Max;
  else if (kind == "min") r = ops::Reduce::Min;
  else fail(ErrorCode::Argument, "reduce: unknown reduction '", kind, "'");
  return wrap(a.env(), ops::reduce(r, a.tensor(1, "x"), a.integers(2, "axes"), a.boolean(3, "keepdim")));
}
Napi::Value Var(const Args& a) {
  return wrap(a.env(), ops::var(a.tensor(0, "x"), a.integers(1, "axes"), a.boolean(2, "keepdim"),
                                a.integer(3, "correction")));
}
Napi::Value Norm(const Args& a) { return wrap(a.env(), ops::norm(a.tensor(0, "x"))); }

// ---- shape ----
Napi::Value Reshape(const Args& a) { return wrap(a.env(), ops::reshape(a.tensor(0, "x"), a.integers(1, "shape"))); }
Napi::Value Permute(const Args& a) { return wrap(a.env(), ops::permute(a.tensor(0, "x"), a.integers(1, "axes"))); }
Napi::Value Concat(const Args& a) { return wrap(a.env(), ops::concat(a.tensors(0, "tensors"), a.integer(1, "axis"))); }
Napi::Value Slice(const Args& a) {
  return wrap(a.env(), ops::slice(a.tensor(0, "x"), a.integer(1, "axis"), a.integer(2, "start"), a.integer(3, "end")));
}
Napi::Value Split(const Args& a) {
  return wrap_all(a.env(), ops::split(a.tensor(0, "x"), a.integers(1, "sizes"), a.integer(2, "axis")));
}
Napi::Value Pad(const Args& a) {
  return wrap(a.env(), ops::pad(a.tensor(0, "x"), a.integers(1, "pads"), float(a.number_or(2, "value", 0))));
}

// ---- linear algebra, convolution, resampling ----
Napi::Value Matmul(const Args& a) { return wrap(a.env(), ops::matmul(a.tensor(0, "a"), a.tensor(1, "b"))); }
// linear(x, weight, bias | null, activation?: string | null, residual?: Tensor | null, gate?: Tensor | null)
Napi::Value Linear(const Args& a) {
  const TensorPtr x = a.tensor(0, "x"), w = a.tensor(1, "weight"), bias = a.optional_tensor(2, "bias");
  ops::LinearFinish finish;
  if (a.present(3)) {
    ops::Unary act;
    const std::string name = a.string(3, "activation");
    FD_CHECK(kernels::parse_unary(name.c_str(), &act), ErrorCode::Argument, "linear: unknown activation '", name, "'");
    finish.activation = act;
  }
  finish.residual = a.optional_tensor(4, "residual");
  finish.gate = a.optional_tensor(5, "gate");
  if (!finish.activation && !finish.residual && !finish.gate) return wrap(a.env(), ops::linear(x, w, bias));
  return wrap(a.env(), ops::linear(x, w, bias, finish));
}
Napi::Value Conv2d(const Args& a) {
  const auto s = a.integers(3, "stride"), p = a.integers(4, "padding"), d = a.integers(5, "dilation");
  FD_CHECK(s.size() == 2 && p.size() == 2 && d.size() == 2, ErrorCode::Argument,
           "conv2d: stride, padding and dilation must be [h, w] pairs");
  return wrap(a.env(), ops::conv2d(a.tensor(0, "x"), a.tensor(1, "weight"), a.optional_tensor(2, "bias"), s[0], s[1],
                                   p[0], p[1], d[0], d[1], a.integer(6, "groups")));
}
Napi::Value UpsampleNearest(const Args& a) {
  return wrap(a.env(), ops::upsample_nearest2d(a.tensor(0, "x"), a.integer(1, "scaleH"), a.integer(2, "scaleW")));
}
Napi::Value AvgPool(const Args& a) {
  return wrap(a.env(), ops::avg_pool2d(a.tensor(0, "x"), a.integer(1, "kernelH"), a.integer(2, "kernelW"),
                                       a.integer(3, "strideH"), a.integer(4, "strideW")));
}
Napi::Value Resize(const Args& a) {
  const std::string mode = a.string(3, "mode");
  FD_CHECK(mode == "bilinear" || mode == "bicubic", ErrorCode::Argument, "resize: mode must be 'bilinear' or 'bicubic', got '",
           mode, "'");
  return wrap(a.env(), ops::resize(a.tensor(0, "x"), a.integer(1, "height"), a.integer(2, "width"),
                                   mode == "bilinear" ? ops::ResizeMode::Bilinear : ops::ResizeMode::Bicubic));
}

// ---- normalization, softmax, attention ----
Napi::Value GroupNorm(const Args& a) {
  return wrap(a.env(), ops::group_norm(a.tensor(0, "x"), a.integer(1, "groups"), a.optional_tensor(2, "weight"),
                                       a.optional_tensor(3, "bias"), float(a.number(4, "eps")), a.boolean(5, "silu")));
}
Napi::Value LayerNorm(const Args& a) {
  return wrap(a.env(), ops::layer_norm(a.tensor(0, "x"), a.optional_tensor(1, "weight"), a.optional_tensor(2, "bias"),
                                       float(a.number(3, "eps"))));
}
Napi::Value Softmax(const Args& a) {
  return wrap(a.env(), ops::softmax(a.tensor(0, "x"), a.integer(1, "axis"), a.boolean(2, "log")));
}
Napi::Value Attention(const Args& a) {
  return wrap(a.env(), ops::attention(a.tensor(0, "q"), a.tensor(1, "k"), a.tensor(2, "v"), float(a.number(3, "scale")),
                                      a.boolean(4, "tokensMajor")));
}

// ---- embeddings, dropout, loss ----
Napi::Value TimestepEmbedding(const Args& a) {
  return wrap(a.env(), ops::timestep_embedding(a.tensor(0, "t"), a.integer(1, "dim"), a.boolean(2, "flipSinToCos"),
                                               float(a.number(3, "downscaleFreqShift")), float(a.number(4, "scale")),
                                               float(a.number(5, "maxPeriod"))));
}
Napi::Value Embedding(const Args& a) {
  const auto ids = a.integers(1, "labels");
  std::vector<int32_t> labels;
  for (int64_t id : ids) {
    FD_CHECK(id >= INT32_MIN && id <= INT32_MAX, ErrorCode::Argument, "embedding: label ", id, " is out of range");
    labels.push_back(int32_t(id));
  }
  return wrap(a.env(), ops::embedding(a.tensor(0, "weight"), labels));
}
Napi::Value Dropout(const Args& a) {
  return wrap(a.env(), ops::dropout(a.tensor(0, "x"), float(a.number(1, "p")), a.uint64(2, "seed"), a.uint64(3, "offset")));
}
Napi::Value MseLoss(const Args& a) {
  const std::string r = a.string(2, "reduction");
  ops::LossReduction red;
  if (r == "mean") red = ops::LossReduction::Mean;
  else if (r == "sum") red = ops::LossReduction::Sum;
  else if (r == "none") red = ops::LossReduction::None;
  else fail(ErrorCode::Argument, "mseLoss: reduction must be 'mean', 'sum' or 'none', got '", r, "'");
  return wrap(a.env(), ops::mse_loss(a.tensor(0, "a"), a.tensor(1, "b"), red));
}

// sidLoss(r, f, xg, alpha) → [loss, mask]
Napi::Value SidLoss(const Args& a) {
  const auto out = ops::sid_loss(a.tensor(0, "r"), a.tensor(1, "f"), a.tensor(2, "xg"), float(a.number(3, "alpha")));
  Napi::Array arr = Napi::Array::New(a.env(), 2);
  arr.Set(uint32_t(0), wrap(a.env(), out[0]));
  arr.Set(uint32_t(1), wrap(a.env(), out[1]));
  return arr;
}

Napi::Value CheckFinite(const Args& a) {
  ops::check_finite(a.tensor(0, "x"), a.string(1, "name"));
  return a.env().Undefined();
}

// ---- optimizers ----
ops::StepOptions step_options(const Args& a, size_t i) {
  ops::StepOptions o;
  o.max_grad_norm = float(a.number(i, "maxGradNorm"));
  o.sanitize = a.boolean(i + 1, "sanitize");
  o.stats = a.optional_tensor(i + 2, "stats");
  return o;
}
Napi::Value AdamStep(const Args& a) {
  ops::OptimGroup g{a.tensors(0, "params"), a.tensors(1, "m"), a.tensors(2, "v")};
  kernels::AdamParams h{};
  h.lr = float(a.number(3, "lr")), h.beta1 = float(a.number(4, "beta1")), h.beta2 = float(a.number(5, "beta2"));
  h.eps = float(a.number(6, "eps")), h.weight_decay = float(a.number(7, "weightDecay"));
  h.decoupled = a.boolean(8, "decoupled");
  const int64_t step = a.integer(9, "step");
  FD_CHECK(step >= 1, ErrorCode::Argument, "adam: step must be >= 1");
  h.bias_c1 = float(1.0 - std::pow(double(h.beta1), double(step)));
  h.bias_c2 = float(1.0 - std::pow(double(h.beta2), double(step)));
  if (h.bias_c1 == 0.f) h.bias_c1 = 1.f;  // β1 = 0 → no first-moment bias
  h.grad_scale = 1.f;
  ops::adam_step(g, h, step_options(a, 10));
  return a.env().Undefined();
}
Napi::Value SgdStep(const Args& a) {
  ops::OptimGroup g{a.tensors(0, "params"), a.tensors(1, "momentumBuffers"), {}};
  ops::sgd_step(g, float(a.number(2, "lr")), float(a.number(3, "momentum")), float(a.number(4, "weightDecay")),
                a.boolean(5, "nesterov"), step_options(a, 6));
  return a.env().Undefined();
}
Napi::Value EmaUpdate(const Args& a) {
  ops::ema_update(a.tensors(0, "ema"), a.tensors(1, "params"), float(a.number(2, "decay")));
  return a.env().Undefined();
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  struct Entry {
    const char* name;
    Napi::Value (*fn)(Info);
  };
  static const Entry entries[] = {
      {"fromData", entry<FromData>}, {"full", entry<Full>}, {"arange", entry<Arange>}, {"rand", entry<Rand>},
      {"randn", entry<Randn>}, {"clone", entry<Clone>}, {"toDevice", entry<ToDevice>}, {"moveTo_", entry<MoveTo>}, {"copy_", entry<Copy>}, {"unary", entry<Unary>},
      {"binary", entry<Binary>}, {"where", entry<Where>}, {"mulAdd", entry<MulAdd>}, {"broadcastTo", entry<BroadcastTo>},
      {"reduce", entry<Reduce>}, {"var", entry<Var>}, {"norm", entry<Norm>}, {"reshape", entry<Reshape>},
      {"permute", entry<Permute>}, {"concat", entry<Concat>}, {"slice", entry<Slice>}, {"split", entry<Split>},
      {"pad", entry<Pad>}, {"matmul", entry<Matmul>}, {"linear", entry<Linear>}, {"conv2d", entry<Conv2d>},
      {"upsampleNearest2d", entry<UpsampleNearest>}, {"avgPool2d", entry<AvgPool>}, {"resize", entry<Resize>},
      {"groupNorm", entry<GroupNorm>}, {"layerNorm", entry<LayerNorm>}, {"softmax", entry<Softmax>},
      {"attention", entry<Attention>}, {"timestepEmbedding", entry<TimestepEmbedding>},
      {"embedding", entry<Embedding>}, {"dropout", entry<Dropout>}, {"mseLoss", entry<MseLoss>}, {"sidLoss", entry<SidLoss>},
      {"checkFinite", entry<CheckFinite>}, {"adamStep", entry<AdamStep>}, {"sgdStep", entry<SgdStep>}, {"emaUpdate", entry<EmaUpdate>},
  };
  for (const Entry& e : entries)
    exports.Set(e.name, Napi::Function::New(env, e.fn, e.name, const_cast<char*>(e.name)));
}

}  // namespace fd::binding
