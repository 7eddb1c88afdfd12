// Argument readers: every malformed JS argument becomes ERR_ARGUMENT naming the op.
#include <cmath>

#include "glue.h"

namespace fd::binding {

TensorPtr Args::tensor(size_t i, const char* name) const {
  FD_CHECK(i < info.Length() && info[i].IsObject(), ErrorCode::Argument, op, ": argument '", name,
           "' must be a Tensor");
  Napi::Object obj = info[i].As<Napi::Object>();
  if (obj.Has("handle") && obj.Get("handle").IsObject()) obj = obj.Get("handle").As<Napi::Object>();  // lib Tensor
  FD_CHECK(obj.InstanceOf(instance(env()).tensor_class.Value()), ErrorCode::Argument, op, ": argument '", name,
           "' must be a Tensor");
  return NativeTensor::Unwrap(obj)->get(op);
}

TensorPtr Args::optional_tensor(size_t i, const char* name) const { return present(i) ? tensor(i, name) : nullptr; }

std::vector<TensorPtr> Args::tensors(size_t i, const char* name) const {
  FD_CHECK(i < info.Length() && info[i].IsArray(), ErrorCode::Argument, op, ": argument '", name,
           "' must be an array of Tensors");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<TensorPtr> out;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    FD_CHECK(v.IsObject(), ErrorCode::Argument, op, ": element ", k, " of '", name, "' is not a Tensor");
    Napi::Object obj = v.As<Napi::Object>();
    if (obj.Has("handle") && obj.Get("handle").IsObject()) obj = obj.Get("handle").As<Napi::Object>();
    FD_CHECK(obj.InstanceOf(instance(env()).tensor_class.Value()), ErrorCode::Argument, op, ": element ", k, " of '",
             name, "' is not a Tensor");
    out.push_back(NativeTensor::Unwrap(obj)->get(op));
  }
  return out;
}

double Args::number(size_t i, const char* name) const {
  FD_CHECK(i < info.Length() && info[i].IsNumber(), ErrorCode::Argument, op, ": argument '", name,
           "' must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

double Args::number_or(size_t i, const char* name, double fallback) const {
  return present(i) ? number(i, name) : fallback;
}

int64_t Args::integer(size_t i, const char* name) const {
  const double v = number(i, name);
  FD_CHECK(std::isfinite(v) && std::floor(v) == v && std::fabs(v) < 9.007199254740992e15, ErrorCode::Argument, op,
           ": argument '", name, "' must be an integer, got ", v);
  return int64_t(v);
}

uint64_t Args::uint64(size_t i, const char* name) const {
  if (i < info.Length() && info[i].IsBigInt()) {
    bool lossless = true;
    const uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    FD_CHECK(lossless, ErrorCode::Argument, op, ": argument '", name, "' does not fit in 64 bits");
    return v;
  }
  const int64_t v = integer(i, name);
  FD_CHECK(v >= 0, ErrorCode::Argument, op, ": argument '", name, "' must be non-negative, got ", v);
  return uint64_t(v);
}

bool Args::boolean(size_t i, const char* name) const {
  FD_CHECK(i < info.Length() && info[i].IsBoolean(), ErrorCode::Argument, op, ": argument '", name,
           "' must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string Args::string(size_t i, const char* name) const {
  FD_CHECK(i < info.Length() && info[i].IsString(), ErrorCode::Argument, op, ": argument '", name,
           "' must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> Args::integers(size_t i, const char* name) const {
  FD_CHECK(i < info.Length() && info[i].IsArray(), ErrorCode::Argument, op, ": argument '", name,
           "' must be an array of integers");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    FD_CHECK(v.IsNumber(), ErrorCode::Argument, op, ": element ", k, " of '", name, "' is not a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    FD_CHECK(std::isfinite(d) && std::floor(d) == d, ErrorCode::Argument, op, ": element ", k, " of '", name,
             "' is not an integer (", d, ")");
    out.push_back(int64_t(d));
  }
  return out;
}

Device Args::device(size_t i, const char* name) const {
  if (!present(i)) return {};
  const std::string s = string(i, name);
  if (s == "cpu") return {};
  if (s == "cuda") return {DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos)
    return {DeviceType::CUDA, std::stoi(s.substr(5))};
  fail(ErrorCode::Argument, op, ": unknown device '", s, "' (expected \"cpu\", \"cuda\" or \"cuda:N\")");
}

Shape Args::shape(size_t i, const char* name) const {
  Shape s = integers(i, name);
  for (int64_t d : s)
    FD_CHECK(d >= 0, ErrorCode::Shape, op, ": shape ", shape_str(s), " has a negative dimension");
  shape_numel(s);  // overflow check
  return s;
}

}  // namespace fd::binding
