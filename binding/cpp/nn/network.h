// Networks (UNet, DiT, MLP) on the op set: parameters by diffusers name, a forward that is
// one engine call (recorded on the tape when gradients are needed), and named points where
// a forward can hand out features, store them into a FeatureCache or reuse cached values
// instead of computing them (FRDiff, DeepCache; DESIGN.md §4–5, METHODS.md §6–7).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "nn/feature_cache.h"

namespace fd::nn {

// ---- configuration: read through an interface so the engine knows nothing of JS ----
// TypeScript normalizes every config (defaults, both diffusers key sets) before it gets
// here, so a missing key is an argument error naming it.
struct ConfigReader {
  virtual ~ConfigReader() = default;
  virtual bool has(const std::string& key) const = 0;  // present and not null
  virtual int64_t integer(const std::string& key) const = 0;
  virtual double number(const std::string& key) const = 0;
  virtual bool boolean(const std::string& key) const = 0;
  virtual std::string string(const std::string& key) const = 0;
  virtual std::vector<int64_t> integers(const std::string& key) const = 0;
  virtual std::vector<std::string> strings(const std::string& key) const = 0;
};

// ---- parameters ----
// How `create` initializes a parameter (PyTorch's defaults unless a network says otherwise).
struct Init {
  enum Kind { Uniform, Normal, Constant } kind = Constant;
  float a = 0.f;  // Uniform: bound (U(−a, a)); Normal: std; Constant: value
};
struct ParamSpec {
  std::string name;
  Shape shape;
  Init init;
};

// Declares parameters under a dotted prefix: `specs.sub("down_blocks").sub(0).conv("conv1", 32, 64, 3)`.
class SpecList {
 public:
  explicit SpecList(std::vector<ParamSpec>* out, std::string prefix = "") : out_(out), prefix_(std::move(prefix)) {}
  SpecList sub(const std::string& name) const;
  SpecList sub(int64_t index) const { return sub(std::to_string(index)); }
  void add(const std::string& leaf, Shape shape, Init init) const;
  // nn.Linear(in, out): weight [out, in], bias [out], U(±1/√in) like torch.
  void linear(const std::string& name, int64_t in, int64_t out, bool bias = true) const;
  // nn.Conv2d(in, out, k): weight [out, in, k, k], bias [out], U(±1/√(in·k·k)).
  void conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, bool bias = true) const;
  // GroupNorm / LayerNorm affine: weight = 1, bias = 0.
  void norm(const std::string& name, int64_t channels) const;
  // nn.Embedding(n, d): N(0, 1).
  void embedding(const std::string& name, int64_t n, int64_t d) const;

 private:
  std::vector<ParamSpec>* out_;
  std::string prefix_;
};

// Parameters by full name, shared with the JS handles that the user sees (same TensorImpl).
class ParamSet {
 public:
  void add(const std::string& name, TensorPtr t);
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  const TensorPtr& get(const std::string& name) const;  // ERR_FORMAT "missing weight" naming it
  const std::vector<std::string>& names() const { return order_; }

 private:
  std::vector<std::string> order_;
  std::unordered_map<std::string, TensorPtr> map_;
};

// A view of the parameters under a prefix: `w.sub("conv1")("weight")`.
class Weights {
 public:
  Weights(const ParamSet* params, std::string prefix) : params_(params), prefix_(std::move(prefix)) {}
  Weights sub(const std::string& name) const;
  Weights sub(int64_t index) const { return sub(std::to_string(index)); }
  const TensorPtr& operator()(const std::string& leaf) const;  // required
  TensorPtr maybe(const std::string& leaf) const;               // null when absent (optional bias)
  const std::string& prefix() const { return prefix_; }
  std::string path(const std::string& leaf) const { return prefix_.empty() ? leaf : prefix_ + "." + leaf; }

 private:
  const ParamSet* params_;
  std::string prefix_;
};

// Glob over point names: '*' matches any run of characters (dots included).
bool glob_match(const std::string& pattern, const std::string& name);

// What one forward does besides computing the output.
struct ForwardContext {
  // Dropout (train mode): each dropout call draws from (seed, offset), then advances offset.
  bool training = false;
  // Built-in label dropout (DiT's class_dropout_prob) in train mode; off for distillation, whose networks must
  // see the labels they are scored against.
  bool label_dropout = true;
  uint64_t seed = 0, offset = 0;
  // Features to hand out (exact point names). early_exit: stop once all are captured
  // (the forward then returns no output — SwD/DMD2 heads on early blocks).
  std::vector<std::string> features;
  bool early_exit = false;
  // Cache traffic, by glob patterns over point names.
  FeatureCache* cache = nullptr;
  std::vector<std::string> store, reuse;
  // Auto-FR's differentiable gate (METHODS.md §6): with a gate α (a [1] tensor), every point matching `reuse`
  // is computed and blended with its cached value, A = A_prev + α·(A_fresh − A_prev), and the blend is stored.
  TensorPtr gate;

  std::vector<std::pair<std::string, TensorPtr>> captured;

  // Every named point of a network goes through here: a reused point returns its cached
  // value without running `compute`; otherwise `compute` runs, and the value is stored
  // and/or captured as asked. Throws EarlyExit once the last wanted feature is captured.
  TensorPtr point(const std::string& name, const std::function<TensorPtr()>& compute);
  // True when `name` will be served from the cache (lets a network skip whole branches
  // whose only consumer is that point — DeepCache).
  // Under a gate nothing is served purely from the cache: every point is computed.
  bool will_reuse(const std::string& name) const;
  // True when `name` is blended under the gate (Auto-FR).
  bool gated(const std::string& name) const;
  // True when a forward stores, reuses or hands out `name` (computing a point only someone looks at).
  bool observes(const std::string& name) const;
  // Seeded dropout (identity in eval mode or for p = 0).
  TensorPtr dropout(const TensorPtr& x, float p);
};

struct EarlyExit {};

// ---- networks ----
class Network {
 public:
  virtual ~Network() = default;
  virtual const char* kind() const = 0;  // "UNet2DModel", "DiTTransformer2DModel", "MLP"
  // Every parameter, in module order, with its shape and init.
  virtual std::vector<ParamSpec> specs() const = 0;
  // Every named point a forward passes, in forward order (block outputs and cache points).
  virtual std::vector<std::string> points() const = 0;
  // The points FRDiff caches by default (METHODS.md §6: UNet ResNet conv1 outputs and attention
  // residual branches; DiT attention branches).
  virtual std::vector<std::string> reuse_points() const = 0;
  // DeepCache (METHODS.md §6): the points whose reuse skips the deep part of the network, keeping `branch` + 1
  // shallow levels fresh (UNet: the up block below the shallowest `branch` + 1; DiT: the residuals of all
  // blocks but the first and last `branch` + 1). ERR_ARGUMENT when the network has no such branch.
  virtual std::vector<std::string> deep_points(int64_t branch) const = 0;
  // Number of class labels the network embeds (0: unconditional).
  virtual int64_t num_classes() const { return 0; }
  // The label of the unconditional branch for classifier-free guidance (-1: none). It is a
  // valid label beside 0..num_classes-1 (DiT: num_classes, its extra embedding row).
  virtual int64_t null_class() const { return -1; }

  // The raw network output, exactly as diffusers' forward for the same weights and inputs.
  // x: the sample; t: timestep per sample [B]; labels: one per sample or empty.
  virtual TensorPtr forward(const TensorPtr& x, const TensorPtr& t, const std::vector<int32_t>& labels,
                            ForwardContext& ctx) const = 0;

  ParamSet params;
};

// Runs `net.forward` with the cache checks and early exit handled; the returned output is
// null only after an early exit.
TensorPtr run_forward(const Network& net, const TensorPtr& x, const TensorPtr& t, const std::vector<int32_t>& labels,
                      ForwardContext& ctx);

// Builds a network of `kind` from its config. Parameters are attached afterwards with
// `attach_parameters` (loaded weights) or `init_parameters` (fresh, seeded).
std::unique_ptr<Network> make_network(const std::string& kind, const ConfigReader& config);
// Checks `given` against the specs: every weight present with its shape, nothing unexpected
// (ERR_FORMAT naming the tensor); then attaches them.
void attach_parameters(Network& net, const std::vector<std::pair<std::string, TensorPtr>>& given);
void init_parameters(Network& net, uint64_t seed);

// Per-network factories (unet.cc, dit.cc, mlp.cc).
std::unique_ptr<Network> make_unet(const ConfigReader& config);
std::unique_ptr<Network> make_dit(const ConfigReader& config);
std::unique_ptr<Network> make_mlp(const ConfigReader& config);

}  // namespace fd::nn
