// JS entry points of the networks and the feature cache. Configs arrive normalized by
// lib/models (every key present); a JsConfig reads them with errors that name the key.
#include <algorithm>
#include <memory>

#include "glue.h"
#include "nn/network.h"

namespace fd::binding {
namespace {

using Info = const Napi::CallbackInfo&;

class JsConfig : public nn::ConfigReader {
 public:
  JsConfig(Napi::Object obj, const char* op) : obj_(obj), op_(op) {}
  bool has(const std::string& key) const override {
    return obj_.Has(key) && !obj_.Get(key).IsUndefined() && !obj_.Get(key).IsNull();
  }
  int64_t integer(const std::string& key) const override {
    const double v = number(key);
    FD_CHECK(v == double(int64_t(v)), ErrorCode::Argument, op_, ": config '", key, "' must be an integer, got ", v);
    return int64_t(v);
  }
  double number(const std::string& key) const override {
    Napi::Value v = get(key);
    FD_CHECK(v.IsNumber(), ErrorCode::Argument, op_, ": config '", key, "' must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  bool boolean(const std::string& key) const override {
    Napi::Value v = get(key);
    FD_CHECK(v.IsBoolean(), ErrorCode::Argument, op_, ": config '", key, "' must be a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  std::string string(const std::string& key) const override {
    Napi::Value v = get(key);
    FD_CHECK(v.IsString(), ErrorCode::Argument, op_, ": config '", key, "' must be a string");
    return v.As<Napi::String>().Utf8Value();
  }
  std::vector<int64_t> integers(const std::string& key) const override {
    std::vector<int64_t> out;
    Napi::Array arr = array(key);
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      FD_CHECK(v.IsNumber() && v.As<Napi::Number>().DoubleValue() == double(v.As<Napi::Number>().Int64Value()),
               ErrorCode::Argument, op_, ": config '", key, "' must be a list of integers");
      out.push_back(v.As<Napi::Number>().Int64Value());
    }
    return out;
  }
  std::vector<std::string> strings(const std::string& key) const override {
    std::vector<std::string> out;
    Napi::Array arr = array(key);
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr.Get(i);
      FD_CHECK(v.IsString(), ErrorCode::Argument, op_, ": config '", key, "' must be a list of strings");
      out.push_back(v.As<Napi::String>().Utf8Value());
    }
    return out;
  }

 private:
  Napi::Value get(const std::string& key) const {
    FD_CHECK(has(key), ErrorCode::Argument, op_, ": config is missing '", key, "'");
    return obj_.Get(key);
  }
  Napi::Array array(const std::string& key) const {
    Napi::Value v = get(key);
    FD_CHECK(v.IsArray(), ErrorCode::Argument, op_, ": config '", key, "' must be an array");
    return v.As<Napi::Array>();
  }
  Napi::Object obj_;
  const char* op_;
};

using NetworkRef = std::shared_ptr<nn::Network>;
using CacheRef = std::shared_ptr<nn::FeatureCache>;

template <typename T>
Napi::Value external(Napi::Env env, std::shared_ptr<T> ptr) {
  return Napi::External<std::shared_ptr<T>>::New(env, new std::shared_ptr<T>(std::move(ptr)),
                                                 [](Napi::Env, std::shared_ptr<T>* p) { delete p; });
}

template <typename T>
const std::shared_ptr<T>& unwrap(const Args& a, size_t i, const char* name) {
  FD_CHECK(i < a.size() && a.info[i].IsExternal(), ErrorCode::Argument, a.op, ": argument '", name,
           "' is not a native handle");
  return *a.info[i].As<Napi::External<std::shared_ptr<T>>>().Data();
}

Napi::Object object_arg(const Args& a, size_t i, const char* name) {
  FD_CHECK(i < a.size() && a.info[i].IsObject(), ErrorCode::Argument, a.op, ": argument '", name, "' must be an object");
  return a.info[i].As<Napi::Object>();
}

// An optional array option of one JS type: `read` converts each element after `is` accepted it.
template <typename T, typename Is, typename Read>
std::vector<T> list_option(const Args& a, Napi::Object obj, const char* key, const char* what, Is is, Read read) {
  std::vector<T> out;
  if (!obj.Has(key) || obj.Get(key).IsUndefined() || obj.Get(key).IsNull()) return out;
  FD_CHECK(obj.Get(key).IsArray(), ErrorCode::Argument, a.op, ": option '", key, "' must be an array of ", what);
  Napi::Array arr = obj.Get(key).As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    FD_CHECK(is(arr.Get(i)), ErrorCode::Argument, a.op, ": option '", key, "' must be an array of ", what);
    out.push_back(read(arr.Get(i)));
  }
  return out;
}

std::vector<std::string> string_list(const Args& a, Napi::Object obj, const char* key) {
  return list_option<std::string>(a, obj, key, "strings", [](const Napi::Value& v) { return v.IsString(); },
                                  [](const Napi::Value& v) { return v.As<Napi::String>().Utf8Value(); });
}

std::vector<bool> flag_list(const Args& a, Napi::Object obj, const char* key) {
  return list_option<bool>(a, obj, key, "booleans", [](const Napi::Value& v) { return v.IsBoolean(); },
                           [](const Napi::Value& v) { return v.As<Napi::Boolean>().Value(); });
}

Napi::Array named_tensors(Napi::Env env, const std::vector<std::pair<std::string, TensorPtr>>& items) {
  Napi::Array out = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::String::New(env, items[i].first));
    pair.Set(1u, wrap(env, items[i].second));
    out.Set(uint32_t(i), pair);
  }
  return out;
}

Napi::Array string_array(Napi::Env env, const std::vector<std::string>& items) {
  Napi::Array out = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) out.Set(uint32_t(i), Napi::String::New(env, items[i]));
  return out;
}

// networkSpecs(kind, config) → [{ name, shape }]
Napi::Value NetworkSpecs(const Args& a) {
  auto net = nn::make_network(a.string(0, "kind"), JsConfig(object_arg(a, 1, "config"), a.op));
  const auto specs = net->specs();
  Napi::Array out = Napi::Array::New(a.env(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    Napi::Object o = Napi::Object::New(a.env());
    o.Set("name", specs[i].name);
    Napi::Array shape = Napi::Array::New(a.env(), specs[i].shape.size());
    for (size_t d = 0; d < specs[i].shape.size(); ++d) shape.Set(uint32_t(d), Napi::Number::New(a.env(), double(specs[i].shape[d])));
    o.Set("shape", shape);
    out.Set(uint32_t(i), o);
  }
  return out;
}

// networkCreate(kind, config, weights: [name, Tensor][] | null, seed) → handle
Napi::Value NetworkCreate(const Args& a) {
  NetworkRef net = nn::make_network(a.string(0, "kind"), JsConfig(object_arg(a, 1, "config"), a.op));
  if (a.present(2)) {
    FD_CHECK(a.info[2].IsArray(), ErrorCode::Argument, a.op, ": weights must be an array of [name, Tensor]");
    Napi::Array arr = a.info[2].As<Napi::Array>();
    std::vector<std::pair<std::string, TensorPtr>> given;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      FD_CHECK(arr.Get(i).IsArray(), ErrorCode::Argument, a.op, ": weights must be an array of [name, Tensor]");
      Napi::Array pair = arr.Get(i).As<Napi::Array>();
      FD_CHECK(pair.Length() == 2 && pair.Get(0u).IsString() && pair.Get(1u).IsObject(), ErrorCode::Argument, a.op,
               ": weights must be an array of [name, Tensor]");
      const std::string name = pair.Get(0u).As<Napi::String>().Utf8Value();
      Napi::Object t = pair.Get(1u).As<Napi::Object>();
      if (t.Has("handle") && t.Get("handle").IsObject()) t = t.Get("handle").As<Napi::Object>();
      FD_CHECK(t.InstanceOf(instance(a.env()).tensor_class.Value()), ErrorCode::Argument, a.op, ": weight '", name,
               "' is not a Tensor");
      given.emplace_back(name, NativeTensor::Unwrap(t)->get(a.op));
    }
    nn::attach_parameters(*net, given);
  } else {
    nn::init_parameters(*net, a.uint64(3, "seed"));
  }
  return external(a.env(), net);
}

// networkParameters(net) → [name, Tensor][] (handles sharing the network's tensors)
Napi::Value NetworkParameters(const Args& a) {
  const NetworkRef& net = unwrap<nn::Network>(a, 0, "network");
  std::vector<std::pair<std::string, TensorPtr>> items;
  for (const auto& name : net->params.names()) items.emplace_back(name, net->params.get(name));
  return named_tensors(a.env(), items);
}

// networkInfo(net) → { kind, points, reusePoints, numClasses, nullClass? }
Napi::Value NetworkInfo(const Args& a) {
  const NetworkRef& net = unwrap<nn::Network>(a, 0, "network");
  Napi::Object o = Napi::Object::New(a.env());
  o.Set("kind", net->kind());
  o.Set("points", string_array(a.env(), net->points()));
  o.Set("reusePoints", string_array(a.env(), net->reuse_points()));
  o.Set("numClasses", Napi::Number::New(a.env(), double(net->num_classes())));
  if (net->null_class() >= 0) o.Set("nullClass", Napi::Number::New(a.env(), double(net->null_class())));
  return o;
}

// networkForward(net, x, t, labels: Int32Array | null, options) → { output: Tensor | null, features: [name, Tensor][] }
// options: { training, seed, offset, features, earlyExit, cache, store, reuse }; gate: Tensor [1] (Auto-FR) or null
Napi::Value NetworkForward(const Args& a) {
  const NetworkRef& net = unwrap<nn::Network>(a, 0, "network");
  TensorPtr x = a.tensor(1, "x"), t = a.tensor(2, "t");
  std::vector<int32_t> labels;
  if (a.present(3)) {
    FD_CHECK(a.info[3].IsTypedArray() && a.info[3].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array,
             ErrorCode::Argument, a.op, ": class labels must be an Int32Array");
    auto arr = a.info[3].As<Napi::Int32Array>();
    labels.assign(arr.Data(), arr.Data() + arr.ElementLength());
  }
  Napi::Object opts = object_arg(a, 4, "options");
  nn::ForwardContext ctx;
  ctx.training = opts.Get("training").ToBoolean();
  ctx.label_dropout = !opts.Has("labelDropout") || opts.Get("labelDropout").ToBoolean();
  if (ctx.training) {
    ctx.seed = uint64_t(opts.Get("seed").ToNumber().Int64Value());
    ctx.offset = uint64_t(opts.Get("offset").ToNumber().Int64Value());
  }
  ctx.features = string_list(a, opts, "features");
  ctx.early_exit = opts.Get("earlyExit").ToBoolean();
  CacheRef cache;
  if (opts.Has("cache") && opts.Get("cache").IsExternal()) {
    cache = *opts.Get("cache").As<Napi::External<CacheRef>>().Data();
    ctx.cache = cache.get();
    ctx.store = string_list(a, opts, "store");
    ctx.reuse = string_list(a, opts, "reuse");
  }
  ctx.gate = a.optional_tensor(5, "gate");
  TensorPtr out = nn::run_forward(*net, x, t, labels, ctx);
  Napi::Object result = Napi::Object::New(a.env());
  result.Set("output", out ? wrap(a.env(), out) : a.env().Null());
  result.Set("features", named_tensors(a.env(), ctx.captured));
  result.Set("dropoutOffset", Napi::Number::New(a.env(), double(ctx.offset)));
  return result;
}

Napi::Value CacheCreate(const Args& a) { return external(a.env(), std::make_shared<nn::FeatureCache>()); }
Napi::Value CacheClear(const Args& a) {
  unwrap<nn::FeatureCache>(a, 0, "cache")->reset();
  return a.env().Undefined();
}

// cacheConfigure(cache, plan | null): plan { points, keyframes, skips?, scoreMixing, slope, bias }; also resets.
Napi::Value CacheConfigure(const Args& a) {
  const CacheRef& cache = unwrap<nn::FeatureCache>(a, 0, "cache");
  if (!a.present(1)) {
    cache->plan.reset();
  } else {
    Napi::Object o = object_arg(a, 1, "plan");
    nn::ReusePlan plan;
    plan.points = string_list(a, o, "points");
    plan.keyframes = flag_list(a, o, "keyframes");
    plan.skips = flag_list(a, o, "skips");
    plan.score_mixing = o.Get("scoreMixing").ToBoolean();
    if (o.Has("slope")) plan.slope = o.Get("slope").ToNumber().DoubleValue();
    if (o.Has("bias")) plan.bias = o.Get("bias").ToNumber().DoubleValue();
    nn::check_plan(plan);
    cache->plan = std::move(plan);
  }
  cache->reset();
  return a.env().Undefined();
}

// cacheNext(cache) → { action: "full" | "reuse" | "skip", lambda, index }
Napi::Value CacheNext(const Args& a) {
  const nn::StepDecision d = unwrap<nn::FeatureCache>(a, 0, "cache")->next();
  static const char* const names[] = {"full", "reuse", "skip"};
  Napi::Object o = Napi::Object::New(a.env());
  o.Set("action", names[d.action]);
  o.Set("lambda", Napi::Number::New(a.env(), d.lambda));
  o.Set("index", Napi::Number::New(a.env(), double(d.index)));
  return o;
}

// cacheState(cache) → { evaluation, planned (evaluations in the plan, or null), epsKey, epsPrev (Tensor | null) }
Napi::Value CacheState(const Args& a) {
  const CacheRef& cache = unwrap<nn::FeatureCache>(a, 0, "cache");
  Napi::Object o = Napi::Object::New(a.env());
  o.Set("evaluation", Napi::Number::New(a.env(), double(cache->evaluation)));
  o.Set("planned", cache->plan ? Napi::Number::New(a.env(), double(cache->plan->keyframes.size())) : a.env().Null());
  o.Set("epsKey", cache->eps_key ? wrap(a.env(), cache->eps_key) : a.env().Null());
  o.Set("epsPrev", cache->eps_prev ? wrap(a.env(), cache->eps_prev) : a.env().Null());
  return o;
}

// cacheSetEps(cache, eps, keyframe): ε of the evaluation just run (also ε_key when it was a keyframe).
Napi::Value CacheSetEps(const Args& a) {
  const CacheRef& cache = unwrap<nn::FeatureCache>(a, 0, "cache");
  cache->eps_prev = a.tensor(1, "eps");
  if (a.boolean(2, "keyframe")) cache->eps_key = cache->eps_prev;
  return a.env().Undefined();
}

Napi::Value NetworkDeepPoints(const Args& a) {
  const NetworkRef& net = unwrap<nn::Network>(a, 0, "network");
  return string_array(a.env(), net->deep_points(int64_t(a.number(1, "branch"))));
}
Napi::Value CacheEntries(const Args& a) {
  const CacheRef& cache = unwrap<nn::FeatureCache>(a, 0, "cache");
  std::vector<std::pair<std::string, TensorPtr>> items(cache->slots.begin(), cache->slots.end());
  std::sort(items.begin(), items.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  return named_tensors(a.env(), items);
}

template <Napi::Value (*H)(const Args&)>
Napi::Value entry(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value { return H(Args{info, static_cast<const char*>(info.Data())}); });
}

}  // namespace

void register_networks(Napi::Env env, Napi::Object exports) {
  struct Entry {
    const char* name;
    Napi::Value (*fn)(Info);
  };
  static const Entry entries[] = {
      {"networkSpecs", entry<NetworkSpecs>}, {"networkCreate", entry<NetworkCreate>},
      {"networkParameters", entry<NetworkParameters>}, {"networkInfo", entry<NetworkInfo>},
      {"networkForward", entry<NetworkForward>}, {"cacheCreate", entry<CacheCreate>},
      {"cacheClear", entry<CacheClear>}, {"cacheEntries", entry<CacheEntries>},
      {"cacheConfigure", entry<CacheConfigure>}, {"cacheNext", entry<CacheNext>},
      {"cacheState", entry<CacheState>}, {"cacheSetEps", entry<CacheSetEps>},
      {"networkDeepPoints", entry<NetworkDeepPoints>},
  };
  for (const Entry& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name, const_cast<char*>(e.name)));
}

}  // namespace fd::binding
