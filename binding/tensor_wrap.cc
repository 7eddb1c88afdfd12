// NativeTensor: the JS handle of a tensor (shape, data readback, grad, backward, dispose).
#include <cstring>

#include "core/autograd.h"
#include "glue.h"
#include "ops/ops.h"

namespace fd::binding {
namespace {

// The values of t in host memory: t itself on the CPU, else a copy queued on the stream
// (without graph metadata: reading is never recorded).
TensorPtr host_values(const TensorPtr& t) {
  return t->device().type == DeviceType::CPU ? t : ops::to_device(alias(t, t->shape), Device{});
}

}  // namespace

Napi::Function NativeTensor::define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceMethod("shape", &NativeTensor::Shape),
                         InstanceMethod("disposed", &NativeTensor::Disposed),
                         InstanceMethod("dispose", &NativeTensor::Dispose),
                         InstanceMethod("dataSync", &NativeTensor::DataSync),
                         InstanceMethod("data", &NativeTensor::Data),
                         InstanceMethod("requiresGrad", &NativeTensor::RequiresGrad),
                         InstanceMethod("setRequiresGrad", &NativeTensor::SetRequiresGrad),
                         InstanceMethod("isLeaf", &NativeTensor::IsLeaf),
                         InstanceMethod("grad", &NativeTensor::Grad),
                         InstanceMethod("setGrad", &NativeTensor::SetGrad),
                         InstanceMethod("gradFn", &NativeTensor::GradFn),
                         InstanceMethod("detach", &NativeTensor::Detach),
                         InstanceMethod("backward", &NativeTensor::Backward),
                         InstanceMethod("id", &NativeTensor::Id),
                         InstanceMethod("device", &NativeTensor::DeviceName),
                     });
}

NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {}

NativeTensor::~NativeTensor() {
  if (tensor_) {
    // Finalizer path (GC backstop).
    *live_counter_ -= 1;
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
  }
}

Napi::Object NativeTensor::wrap(Napi::Env env, TensorPtr t) {
  Instance& inst = instance(env);
  Napi::Object obj = inst.tensor_class.New({});
  NativeTensor* self = Unwrap(obj);
  self->reported_bytes_ = t->numel() * int64_t(sizeof(float));
  self->tensor_ = std::move(t);
  self->live_counter_ = inst.live_tensors;
  *inst.live_tensors += 1;
  Napi::MemoryManagement::AdjustExternalMemory(env, self->reported_bytes_);
  return obj;
}

const TensorPtr& NativeTensor::get(const char* op) const {
  FD_CHECK(tensor_ != nullptr, ErrorCode::Disposed, op, ": the tensor was disposed");
  return tensor_;
}

void NativeTensor::dispose(Napi::Env env) {
  if (!tensor_) return;
  tensor_ = nullptr;
  *live_counter_ -= 1;
  Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
  reported_bytes_ = 0;
}

Napi::Value NativeTensor::Shape(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const auto& t = get("shape");
    Napi::Array arr = Napi::Array::New(info.Env(), t->shape.size());
    for (size_t i = 0; i < t->shape.size(); ++i) arr.Set(uint32_t(i), Napi::Number::New(info.Env(), double(t->shape[i])));
    return arr;
  });
}

Napi::Value NativeTensor::DeviceName(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), get("device")->device().str()); });
}

Napi::Value NativeTensor::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_); }

Napi::Value NativeTensor::Dispose(const Napi::CallbackInfo& info) {
  dispose(info.Env());
  return info.Env().Undefined();
}

Napi::Value NativeTensor::DataSync(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const TensorPtr t = host_values(get("dataSync"));
    instance(info.Env()).stream->synchronize();
    auto out = Napi::Float32Array::New(info.Env(), size_t(t->numel()));
    if (t->numel()) std::memcpy(out.Data(), t->data(), size_t(t->numel()) * sizeof(float));
    return out;
  });
}

Napi::Value NativeTensor::Data(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return read_values(info.Env(), host_values(get("data"))); });
}

Napi::Value NativeTensor::RequiresGrad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), get("requiresGrad")->needs_grad()); });
}

Napi::Value NativeTensor::SetRequiresGrad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "requiresGrad"};
    const TensorPtr& t = get("requiresGrad");
    FD_CHECK(!t->grad_fn, ErrorCode::Argument, "requiresGrad: only leaf tensors can change requiresGrad (this one is the output of ",
             t->grad_fn->name(), "; use detach())");
    t->requires_grad = a.boolean(0, "value");
    return info.Env().Undefined();
  });
}

Napi::Value NativeTensor::IsLeaf(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), !get("isLeaf")->grad_fn); });
}

Napi::Value NativeTensor::Grad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const TensorPtr& t = get("grad");
    if (!t->grad) return info.Env().Null();
    return wrap(info.Env(), t->grad);
  });
}

Napi::Value NativeTensor::SetGrad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "setGrad"};
    const TensorPtr& t = get("setGrad");
    TensorPtr g = a.optional_tensor(0, "grad");
    FD_CHECK(!g || g->shape == t->shape, ErrorCode::Shape, "setGrad: gradient ", shape_str(g ? g->shape : fd::Shape{}),
             " does not match tensor ", shape_str(t->shape));
    t->grad = g ? alias(g, g->shape) : nullptr;
    return info.Env().Undefined();
  });
}

Napi::Value NativeTensor::GradFn(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const TensorPtr& t = get("gradFn");
    if (!t->grad_fn) return info.Env().Null();
    return Napi::String::New(info.Env(), t->grad_fn->name());
  });
}

Napi::Value NativeTensor::Detach(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const TensorPtr& t = get("detach");
    return wrap(info.Env(), alias(t, t->shape));
  });
}

Napi::Value NativeTensor::Backward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "backward"};
    const TensorPtr& t = get("backward");
    backward(t, a.optional_tensor(0, "gradient"), a.present(1) && a.boolean(1, "retainGraph"));
    return info.Env().Undefined();
  });
}

Napi::Value NativeTensor::Id(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), double(reinterpret_cast<uintptr_t>(get("id").get()) & 0xffffffffffff));
  });
}

Napi::Value wrap(Napi::Env env, const TensorPtr& t) { return NativeTensor::wrap(env, t); }

Napi::Value wrap_all(Napi::Env env, const std::vector<TensorPtr>& ts) {
  Napi::Array arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); ++i) arr.Set(uint32_t(i), wrap(env, ts[i]));
  return arr;
}

}  // namespace fd::binding
