// Parameter specs and sets, the forward context (features, cache, dropout) and the
// network factory.
#include "nn/network.h"

#include <cmath>

#include "ops/ops.h"

namespace fd::nn {

// ---- SpecList ----
SpecList SpecList::sub(const std::string& name) const { return SpecList(out_, prefix_.empty() ? name : prefix_ + "." + name); }

void SpecList::add(const std::string& leaf, Shape shape, Init init) const {
  out_->push_back({prefix_.empty() ? leaf : prefix_ + "." + leaf, std::move(shape), init});
}

void SpecList::linear(const std::string& name, int64_t in, int64_t out, bool bias) const {
  const float bound = 1.f / std::sqrt(float(in));
  sub(name).add("weight", {out, in}, {Init::Uniform, bound});
  if (bias) sub(name).add("bias", {out}, {Init::Uniform, bound});
}

void SpecList::conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, bool bias) const {
  const float bound = 1.f / std::sqrt(float(in * kernel * kernel));
  sub(name).add("weight", {out, in, kernel, kernel}, {Init::Uniform, bound});
  if (bias) sub(name).add("bias", {out}, {Init::Uniform, bound});
}

void SpecList::norm(const std::string& name, int64_t channels) const {
  sub(name).add("weight", {channels}, {Init::Constant, 1.f});
  sub(name).add("bias", {channels}, {Init::Constant, 0.f});
}

void SpecList::embedding(const std::string& name, int64_t n, int64_t d) const {
  sub(name).add("weight", {n, d}, {Init::Normal, 1.f});
}

// ---- ParamSet / Weights ----
void ParamSet::add(const std::string& name, TensorPtr t) {
  if (!map_.count(name)) order_.push_back(name);
  map_[name] = std::move(t);
}

const TensorPtr& ParamSet::get(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end()) fail(ErrorCode::Format, "network: missing weight '", name, "'");
  return it->second;
}

Weights Weights::sub(const std::string& name) const { return Weights(params_, path(name)); }

const TensorPtr& Weights::operator()(const std::string& leaf) const { return params_->get(path(leaf)); }

TensorPtr Weights::maybe(const std::string& leaf) const {
  const std::string name = path(leaf);
  return params_->has(name) ? params_->get(name) : nullptr;
}

// ---- ForwardContext ----
bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative matcher with one backtrack point (the last '*').
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p, ++n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

static bool any_match(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (glob_match(p, name)) return true;
  return false;
}

bool ForwardContext::will_reuse(const std::string& name) const { return cache && !gate && any_match(reuse, name); }
bool ForwardContext::gated(const std::string& name) const { return cache && gate && any_match(reuse, name); }

bool ForwardContext::observes(const std::string& name) const {
  for (const auto& f : features)
    if (f == name) return true;
  return cache && (any_match(store, name) || any_match(reuse, name));
}

TensorPtr ForwardContext::point(const std::string& name, const std::function<TensorPtr()>& compute) {
  TensorPtr value;
  if (gated(name)) {
    value = compute();
    auto it = cache->slots.find(name);
    if (it != cache->slots.end()) value = ops::add(it->second, ops::mul(gate, ops::sub(value, it->second)));
    cache->slots[name] = value;
  } else if (will_reuse(name)) {
    auto it = cache->slots.find(name);
    FD_CHECK(it != cache->slots.end(), ErrorCode::Argument, "forward: reuse of '", name,
             "' asked, but the feature cache has no value for it (run a forward that stores it first)");
    value = it->second;
  } else {
    value = compute();
    if (cache && any_match(store, name)) cache->slots[name] = value;
  }
  bool wanted = false;
  for (const auto& f : features) wanted = wanted || f == name;
  if (wanted) {
    captured.emplace_back(name, value);
    if (early_exit && captured.size() >= features.size()) throw EarlyExit{};
  }
  return value;
}

TensorPtr ForwardContext::dropout(const TensorPtr& x, float p) {
  if (!training || p <= 0.f) return x;
  TensorPtr y = ops::dropout(x, p, seed, offset);
  offset += uint64_t((x->numel() + 3) / 4);  // Philox blocks, like lib/random.ts Generator.take
  return y;
}

TensorPtr run_forward(const Network& net, const TensorPtr& x, const TensorPtr& t, const std::vector<int32_t>& labels,
                      ForwardContext& ctx) {
  if (ctx.gate) {
    FD_CHECK(ctx.cache && !ctx.reuse.empty(), ErrorCode::Argument, net.kind(), ": a gate needs a cache and points to reuse");
    FD_CHECK(ctx.gate->numel() == 1, ErrorCode::Shape, net.kind(), ": the gate must have one element, got ",
             shape_str(ctx.gate->shape));
  }
  if (ctx.cache && !ctx.reuse.empty() && !ctx.cache->slots.empty()) {
    FD_CHECK(ctx.cache->input_shape == x->shape, ErrorCode::Shape, net.kind(), ": feature cache was filled for input ",
             shape_str(ctx.cache->input_shape), ", reused with input ", shape_str(x->shape));
  }
  for (const auto& f : ctx.features) {
    bool known = false;
    for (const auto& p : net.points()) known = known || p == f;
    FD_CHECK(known, ErrorCode::Argument, net.kind(), ": no point named '", f, "' (see blocks())");
  }
  ctx.captured.clear();
  TensorPtr out;
  try {
    out = net.forward(x, t, labels, ctx);
  } catch (const EarlyExit&) {
    out = nullptr;
  }
  if (ctx.cache && (!ctx.store.empty() || ctx.gate)) ctx.cache->input_shape = x->shape;
  return out;
}

// ---- factory and parameters ----
std::unique_ptr<Network> make_network(const std::string& kind, const ConfigReader& config) {
  if (kind == "UNet2DModel") return make_unet(config);
  if (kind == "DiTTransformer2DModel") return make_dit(config);
  if (kind == "MLP") return make_mlp(config);
  fail(ErrorCode::Argument, "network: unknown class '", kind, "' (expected UNet2DModel, DiTTransformer2DModel or MLP)");
}

void attach_parameters(Network& net, const std::vector<std::pair<std::string, TensorPtr>>& given) {
  std::unordered_map<std::string, TensorPtr> by_name;
  for (const auto& [name, t] : given) by_name[name] = t;
  const auto specs = net.specs();
  std::unordered_map<std::string, const ParamSpec*> expected;
  for (const auto& s : specs) expected[s.name] = &s;
  for (const auto& [name, t] : given)
    FD_CHECK(expected.count(name), ErrorCode::Format, net.kind(), ": unexpected weight '", name, "' ",
             shape_str(t->shape), " (not in this config)");
  for (const auto& s : specs) {
    auto it = by_name.find(s.name);
    FD_CHECK(it != by_name.end(), ErrorCode::Format, net.kind(), ": missing weight '", s.name, "' ", shape_str(s.shape));
    FD_CHECK(it->second->shape == s.shape, ErrorCode::Format, net.kind(), ": weight '", s.name, "' has shape ",
             shape_str(it->second->shape), ", the config needs ", shape_str(s.shape));
  }
  for (const auto& s : specs) net.params.add(s.name, by_name[s.name]);
}

void init_parameters(Network& net, uint64_t seed) {
  uint64_t offset = 0;
  for (const auto& s : net.specs()) {
    TensorPtr t;
    switch (s.init.kind) {
      case Init::Uniform: t = ops::rand(s.shape, seed, offset, -s.init.a, s.init.a); break;
      case Init::Normal: t = ops::randn(s.shape, seed, offset, 0.f, s.init.a); break;
      case Init::Constant: t = ops::full(s.shape, s.init.a); break;
    }
    offset += uint64_t(shape_numel(s.shape));
    t->requires_grad = true;
    net.params.add(s.name, t);
  }
}

}  // namespace fd::nn
