// N-API glue shared by the binding files: per-thread instance data, the tensor
// handle class, argument readers that throw fd::Error(ERR_ARGUMENT) with the op
// name, and `guard`, which turns every C++ exception into a JS FastdiffError so
// nothing C++ ever crosses N-API.
#pragma once
#define NAPI_CPP_EXCEPTIONS
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace fd::binding {

struct ReadChannel;  // read.cc

struct Instance {
  std::unique_ptr<Stream> stream;
  std::shared_ptr<ReadChannel> reads;  // data() completions (read.cc), made at the first read
  Napi::FunctionReference tensor_class;
  Napi::FunctionReference error_class;  // lib/errors.ts FastdiffError(code, message)
  // Shared with every handle so a finalizer running during env teardown never
  // touches freed instance data.
  std::shared_ptr<int64_t> live_tensors = std::make_shared<int64_t>(0);
};
Instance& instance(Napi::Env env);

// A promise of t's values, resolved on this JS thread once the stream has run every kernel queued so far
// (rejected with the first deferred kernel error, as synchronize() would throw it).
Napi::Promise read_values(Napi::Env env, TensorPtr t);

// JS-side handle of one tensor. dispose() drops the reference at once; the GC
// finalizer is the backstop.
class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, TensorPtr t);  // a new handle owning `t`
  explicit NativeTensor(const Napi::CallbackInfo& info);
  ~NativeTensor() override;
  const TensorPtr& get(const char* op) const;  // throws ERR_DISPOSED
  void dispose(Napi::Env env);

 private:
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value DataSync(const Napi::CallbackInfo& info);
  Napi::Value Data(const Napi::CallbackInfo& info);
  Napi::Value RequiresGrad(const Napi::CallbackInfo& info);
  Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info);
  Napi::Value IsLeaf(const Napi::CallbackInfo& info);
  Napi::Value Grad(const Napi::CallbackInfo& info);
  Napi::Value SetGrad(const Napi::CallbackInfo& info);
  Napi::Value GradFn(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Id(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);

  TensorPtr tensor_;
  int64_t reported_bytes_ = 0;
  std::shared_ptr<int64_t> live_counter_;
};

Napi::Error make_error(Napi::Env env, const Error& e);

// Runs `body`, converting fd::Error and any std::exception into a thrown JS error.
template <typename Body>
Napi::Value guard(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  } catch (const Error& e) {
    make_error(env, e).ThrowAsJavaScriptException();
  } catch (const std::bad_alloc&) {
    make_error(env, Error(ErrorCode::Memory, "out of memory")).ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    make_error(env, Error(ErrorCode::Internal, e.what())).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// ---- argument readers (op: the op's name for messages) ----
struct Args {
  const Napi::CallbackInfo& info;
  const char* op;
  Napi::Env env() const { return info.Env(); }
  size_t size() const { return info.Length(); }
  bool present(size_t i) const { return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull(); }
  TensorPtr tensor(size_t i, const char* name) const;
  TensorPtr optional_tensor(size_t i, const char* name) const;  // null/undefined → nullptr
  std::vector<TensorPtr> tensors(size_t i, const char* name) const;
  double number(size_t i, const char* name) const;
  double number_or(size_t i, const char* name, double fallback) const;
  int64_t integer(size_t i, const char* name) const;
  uint64_t uint64(size_t i, const char* name) const;  // accepts number or bigint
  bool boolean(size_t i, const char* name) const;
  std::string string(size_t i, const char* name) const;
  Shape shape(size_t i, const char* name) const;  // array of non-negative integers
  std::vector<int64_t> integers(size_t i, const char* name) const;
  // "cpu", "cuda" (= "cuda:0") or "cuda:N"; absent → the CPU.
  Device device(size_t i, const char* name) const;
};

Napi::Value wrap(Napi::Env env, const TensorPtr& t);
Napi::Value wrap_all(Napi::Env env, const std::vector<TensorPtr>& ts);

void register_ops(Napi::Env env, Napi::Object exports);
void register_networks(Napi::Env env, Napi::Object exports);  // nn_binding.cc

}  // namespace fd::binding
