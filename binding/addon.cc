// Module entry: per-thread instance data (its own CPU stream), error conversion,
// and the engine-level functions (memory, threads, ISA, grad mode, devices).
#include <cmath>
#include <cstdlib>

#include "core/precision.h"
#include "core/profile.h"
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "core/threadpool.h"
#include "cuda/device.h"
#include "glue.h"
#include "ops/ops.h"

namespace fd::binding {

Instance& instance(Napi::Env env) { return *env.GetInstanceData<Instance>(); }

Napi::Error make_error(Napi::Env env, const Error& e) {
  Instance& inst = instance(env);
  if (!inst.error_class.IsEmpty()) {
    Napi::Value v = inst.error_class.New({Napi::String::New(env, error_code_name(e.code())), Napi::String::New(env, e.what())});
    return Napi::Error(env, v);
  }
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, error_code_name(e.code())));
  return err;
}

namespace {

using Info = const Napi::CallbackInfo&;

Napi::Value SetErrorClass(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    FD_CHECK(info.Length() == 1 && info[0].IsFunction(), ErrorCode::Argument, "setErrorClass: expected a constructor");
    instance(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
  });
}

Napi::Value Memory(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const MemoryStats s = HostAllocator::instance().stats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("liveTensors", double(*instance(info.Env()).live_tensors));
    o.Set("bytes", double(s.live_bytes));
    o.Set("blocks", double(s.live_blocks));
    o.Set("cachedBytes", double(s.cached_bytes));
    o.Set("peakBytes", double(s.peak_bytes));
    o.Set("cacheHits", double(s.cache_hits));
    o.Set("cacheMisses", double(s.cache_misses));
    o.Set("cacheLimitBytes", double(s.cache_limit));
    o.Set("hugeMappedBytes", double(s.huge_mapped_bytes));
    const auto devices = cuda::device_memory();
    Napi::Array devs = Napi::Array::New(info.Env(), devices.size());
    for (size_t i = 0; i < devices.size(); ++i) {
      Napi::Object d = Napi::Object::New(info.Env());
      d.Set("device", "cuda:" + std::to_string(devices[i].index));
      d.Set("bytes", double(devices[i].live_bytes));
      d.Set("cachedBytes", double(devices[i].cached_bytes));
      d.Set("peakBytes", double(devices[i].peak_bytes));
      devs.Set(uint32_t(i), d);
    }
    o.Set("devices", devs);
    return o;
  });
}

Napi::Value EmptyCache(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    instance(info.Env()).stream->synchronize();
    HostAllocator::instance().empty_cache();
    cuda::empty_device_caches();
    return info.Env().Undefined();
  });
}

Napi::Value Synchronize(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    instance(info.Env()).stream->synchronize();
    cuda::synchronize_devices();
    return info.Env().Undefined();
  });
}

// Process-wide kernel settings (core/precision.h) named by strings: set*(name) checks the
// name and waits for queued kernels (they keep the setting they were issued with).
constexpr const char* kMatmulPrecisions[] = {"highest", "high", "medium"};
constexpr const char* kConvAlgorithms[] = {"auto", "direct", "winograd", "winograd4", "direct3x3"};

template <size_t N>
Napi::Value set_named_setting(Info info, const char* op, const char* what, const char* const (&names)[N],
                              void (*set)(int)) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const std::string name = Args{info, op}.string(0, what);
    int index = -1;
    std::string expected;
    for (size_t k = 0; k < N; ++k) {
      if (name == names[k]) index = int(k);
      expected += std::string(k == 0 ? "" : k + 1 == N ? " or " : ", ") + "\"" + names[k] + "\"";
    }
    if (index < 0) fail(ErrorCode::Argument, op, ": ", what, " must be ", expected, ", got '", name, "'");
    instance(info.Env()).stream->synchronize();
    set(index);
    return info.Env().Undefined();
  });
}

Napi::Value SetMatmulPrecision(Info info) {
  return set_named_setting(info, "setMatmulPrecision", "precision", kMatmulPrecisions,
                           [](int i) { set_matmul_precision(MatmulPrecision(i)); });
}

Napi::Value GetMatmulPrecision(Info info) {
  return Napi::String::New(info.Env(), kMatmulPrecisions[int(matmul_precision())]);
}

Napi::Value SetConvAlgorithm(Info info) {
  return set_named_setting(info, "setConvAlgorithm", "algorithm", kConvAlgorithms,
                           [](int i) { set_conv_algorithm(ConvAlgorithm(i)); });
}

Napi::Value GetConvAlgorithm(Info info) {
  return Napi::String::New(info.Env(), kConvAlgorithms[int(conv_algorithm())]);
}

Napi::Value GetNumThreads(Info info) { return Napi::Number::New(info.Env(), ThreadPool::global().num_threads()); }

Napi::Value SetNumThreads(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "setNumThreads"};
    const int64_t n = a.integer(0, "threads");
    FD_CHECK(n >= 1 && n <= 256, ErrorCode::Argument, "setNumThreads: threads must be in 1..256, got ", n);
    instance(info.Env()).stream->synchronize();  // never resize under a running kernel
    ThreadPool::global().resize(int(n));
    return info.Env().Undefined();
  });
}

Napi::Value GetIsa(Info info) { return Napi::String::New(info.Env(), isa_name(active_isa())); }

Napi::Value SetIsa(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "setIsa"};
    const std::string name = a.string(0, "isa");
    Isa isa;
    FD_CHECK(parse_isa(name, &isa), ErrorCode::Argument, "setIsa: unknown ISA '", name, "' (scalar, avx2, avx512)");
    instance(info.Env()).stream->synchronize();
    set_active_isa(isa);
    return info.Env().Undefined();
  });
}

Napi::Value CpuInfo(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const CpuFeatures& f = cpu_features();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("brand", f.brand);
    o.Set("bestIsa", isa_name(best_isa()));
    o.Set("activeIsa", isa_name(active_isa()));
    o.Set("threads", ThreadPool::global().num_threads());
    Napi::Object flags = Napi::Object::New(info.Env());
    flags.Set("avx2", f.avx2), flags.Set("fma", f.fma), flags.Set("f16c", f.f16c);
    flags.Set("avx512f", f.avx512f), flags.Set("avx512bw", f.avx512bw), flags.Set("avx512vl", f.avx512vl);
    flags.Set("avx512dq", f.avx512dq), flags.Set("avx512bf16", f.avx512bf16);
    o.Set("features", flags);
    o.Set("synchronous", instance(info.Env()).stream->synchronous());
    return o;
  });
}

Napi::Value CudaInfo(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const cuda::ProbeResult r = cuda::probe();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("compiled", r.compiled);
    o.Set("available", r.available);
    o.Set("reason", r.reason);
    Napi::Array devs = Napi::Array::New(info.Env(), r.devices.size());
    for (size_t i = 0; i < r.devices.size(); ++i) {
      Napi::Object d = Napi::Object::New(info.Env());
      d.Set("index", r.devices[i].index);
      d.Set("name", r.devices[i].name);
      d.Set("computeCapability", std::to_string(r.devices[i].major) + "." + std::to_string(r.devices[i].minor));
      d.Set("memoryBytes", double(r.devices[i].total_memory));
      devs.Set(uint32_t(i), d);
    }
    o.Set("devices", devs);
    return o;
  });
}

Napi::Value SetGradEnabled(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "setGradEnabled"};
    const bool prev = grad_enabled();
    set_grad_enabled(a.boolean(0, "enabled"));
    return Napi::Boolean::New(info.Env(), prev);
  });
}

Napi::Value SetProfiling(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    set_profiling(Args{info, "setProfiling"}.boolean(0, "enabled"));
    return info.Env().Undefined();
  });
}

Napi::Value Profile(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const auto rows = profile_snapshot(Args{info, "profile"}.boolean(0, "reset"));
    Napi::Array out = Napi::Array::New(info.Env(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("op", rows[i].op);
      o.Set("calls", Napi::Number::New(info.Env(), double(rows[i].calls)));
      o.Set("seconds", Napi::Number::New(info.Env(), rows[i].seconds));
      out.Set(uint32_t(i), o);
    }
    return out;
  });
}

Napi::Value IsGradEnabled(Info info) { return Napi::Boolean::New(info.Env(), grad_enabled()); }

Napi::Value PhiloxBlock(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "philoxBlock"};
    uint32_t w[4];
    Philox4x32::block(a.uint64(0, "seed"), a.uint64(1, "counter"), w);
    Napi::Array arr = Napi::Array::New(info.Env(), 4);
    for (uint32_t i = 0; i < 4; ++i) arr.Set(i, Napi::Number::New(info.Env(), double(w[i])));
    return arr;
  });
}

// hostRandom(normal, n, seed, offset, a, b) → Float32Array: the values randn (mean a, std b) or rand ([a, b)) of n
// elements would hold, computed on the calling thread by the same fill — no tensor, no wait for queued kernels.
Napi::Value HostRandom(Info info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Args a{info, "hostRandom"};
    const bool normal = a.boolean(0, "normal");
    const double n = a.number(1, "n");
    FD_CHECK(n >= 0 && n < double(int64_t(1) << 32) && n == std::floor(n), ErrorCode::Argument,
             "hostRandom: n must be a non-negative integer below 2^32, got ", n);
    auto out = Napi::Float32Array::New(info.Env(), size_t(n));
    const uint64_t seed = a.uint64(2, "seed"), offset = a.uint64(3, "offset");
    const float p = float(a.number(4, normal ? "mean" : "low")), q = float(a.number(5, normal ? "std" : "high"));
    if (normal)
      fill_normal(out.Data(), int64_t(n), seed, offset, p, q);
    else
      fill_uniform(out.Data(), int64_t(n), seed, offset, p, q);
    return out;
  });
}

TensorPtr grad_add_op(const TensorPtr& a, const TensorPtr& b) { return ops::add(a, b); }

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* inst = new Instance;
  const char* sync_env = std::getenv("FASTDIFF_SYNC");
  const bool sync = sync_env && std::string(sync_env) != "0" && std::string(sync_env) != "";
  inst->stream = std::make_unique<Stream>(sync);
  set_current_stream(inst->stream.get());
  env.SetInstanceData<Instance>(inst);  // deleted (stream drained and joined) when this env ends
  set_grad_ops(&grad_add_op, &ops::contiguous_copy);

  inst->tensor_class = Napi::Persistent(NativeTensor::define(env));
  exports.Set("NativeTensor", inst->tensor_class.Value());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("memory", Napi::Function::New(env, Memory));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
  exports.Set("setMatmulPrecision", Napi::Function::New(env, SetMatmulPrecision));
  exports.Set("getMatmulPrecision", Napi::Function::New(env, GetMatmulPrecision));
  exports.Set("setConvAlgorithm", Napi::Function::New(env, SetConvAlgorithm));
  exports.Set("getConvAlgorithm", Napi::Function::New(env, GetConvAlgorithm));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getIsa", Napi::Function::New(env, GetIsa));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("setProfiling", Napi::Function::New(env, SetProfiling));
  exports.Set("profile", Napi::Function::New(env, Profile));
  exports.Set("flopsIssued", Napi::Function::New(env, [](Info info) -> Napi::Value {
    return Napi::Number::New(info.Env(), flops_issued());
  }));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("philoxBlock", Napi::Function::New(env, PhiloxBlock));
  exports.Set("hostRandom", Napi::Function::New(env, HostRandom));
  register_ops(env, exports);
  register_networks(env, exports);
  return exports;
}

}  // namespace fd::binding

static Napi::Object InitFastdiff(Napi::Env env, Napi::Object exports) { return fd::binding::Init(env, exports); }
NODE_API_MODULE(fastdiff, InitFastdiff)
