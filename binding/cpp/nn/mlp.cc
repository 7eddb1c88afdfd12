// MLP: fastdiff's own small time-conditioned denoiser for vectors and 2-D toy data (where the exact
// score is known and methods can be tested exactly; DESIGN.md §4). Not a diffusers model.
//
//   x [B, D] with D = in_features (or [B, ...] with D values per sample; the output has x's shape)
//   t [B]: the conditioning scalar (the preconditioning wrapper passes c_noise)
//
//   time_embedding  emb = linear_2(SiLU(linear_1(sinusoid(t))))                       [B, E]
//                   sinusoid: diffusers' Timesteps(E, flip_sin_to_cos=True, downscale_freq_shift=0)
//                   + class_embedding.weight[label] when num_classes > 0 (no null class)
//   in_proj         h = Linear(D → H)(x)                                                [B, H]
//   layers.{i}      h = h + Dropout(SiLU(linear(h) + emb_proj(SiLU(emb))))             [B, H]
//                   (a one-layer residual branch with an additive time/class projection: the skip keeps
//                   x → output linear, which suits denoisers whose D(x) ≈ c·x at large σ)
//   output          out_proj(h)                                                         [B, D]
//
// Parameters (torch default init): time_embedding.linear_1 [E, E], time_embedding.linear_2 [E, E],
// class_embedding.weight [num_classes, E], in_proj [H, D], layers.{i}.linear [H, H], layers.{i}.emb_proj
// [H, E], out_proj [D, H] (each Linear with bias).
//
// Points: time_embedding, layers.{i}, output. reuse_points() is empty: there is no expensive branch to
// cache in a network this small (a caller may still store/reuse any point by name).
#include "nn/layers.h"
#include "nn/network.h"
#include "ops/ops.h"

namespace fd::nn {
namespace {

class MLP final : public Network {
 public:
  explicit MLP(const ConfigReader& c) {
    const char* op = "MLP";
    in_ = c.integer("in_features");
    hidden_ = c.integer("hidden_size");
    layers_ = c.integer("num_layers");
    embed_ = c.integer("time_embed_dim");
    num_classes_ = c.integer("num_classes");
    dropout_ = float(c.number("dropout"));
    auto positive = [&](const char* key, int64_t v) {
      FD_CHECK(v > 0, ErrorCode::Argument, op, ": config '", key, "' must be positive, got ", v);
    };
    positive("in_features", in_);
    positive("hidden_size", hidden_);
    positive("num_layers", layers_);
    positive("time_embed_dim", embed_);
    FD_CHECK(embed_ >= 2, ErrorCode::Argument, op, ": config 'time_embed_dim' must be at least 2, got ", embed_);
    FD_CHECK(num_classes_ >= 0, ErrorCode::Argument, op, ": config 'num_classes' must be >= 0, got ", num_classes_);
    FD_CHECK(dropout_ >= 0.f && dropout_ < 1.f, ErrorCode::Argument, op, ": config 'dropout' must be in [0, 1), got ",
             dropout_);
    points_.push_back("time_embedding");
    for (int64_t i = 0; i < layers_; ++i) points_.push_back("layers." + std::to_string(i));
    points_.push_back("output");
  }

  const char* kind() const override { return "MLP"; }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<std::string> points() const override { return points_; }
  std::vector<std::string> reuse_points() const override { return {}; }
  std::vector<std::string> deep_points(int64_t) const override {
    fail(ErrorCode::Argument, "MLP: no deep branch to cache (DeepCache needs a UNet or a DiT)");
  }

  std::vector<ParamSpec> specs() const override {
    std::vector<ParamSpec> out;
    SpecList s(&out);
    timestep_mlp_specs(s.sub("time_embedding"), embed_, embed_);
    if (num_classes_ > 0) s.embedding("class_embedding", num_classes_, embed_);
    s.linear("in_proj", in_, hidden_);
    for (int64_t i = 0; i < layers_; ++i) {
      s.sub("layers").sub(i).linear("linear", hidden_, hidden_);
      s.sub("layers").sub(i).linear("emb_proj", embed_, hidden_);
    }
    s.linear("out_proj", hidden_, in_);
    return out;
  }

  TensorPtr forward(const TensorPtr& x, const TensorPtr& t, const std::vector<int32_t>& labels,
                    ForwardContext& ctx) const override {
    const char* op = "MLP";
    FD_CHECK(x->dim() >= 2 && x->numel() == x->shape[0] * in_, ErrorCode::Shape, op, ": expected a sample [B, ", in_,
             "] (or [B, ...] with ", in_, " values per sample), got ", shape_str(x->shape));
    const int64_t B = x->shape[0];
    FD_CHECK(t->dim() == 1 && t->shape[0] == B, ErrorCode::Shape, op, ": timestep ", shape_str(t->shape),
             " does not match the batch of sample ", shape_str(x->shape), " (expected [", B, "])");
    if (num_classes_ > 0) {
      FD_CHECK(int64_t(labels.size()) == B, ErrorCode::Argument, op, ": class labels are required (one per sample: ",
               B, "), got ", labels.size());
      for (size_t i = 0; i < labels.size(); ++i)
        FD_CHECK(labels[i] >= 0 && labels[i] < num_classes_, ErrorCode::Argument, op, ": class label ", labels[i],
                 " at ", i, " is not in [0, ", num_classes_, ")");
    } else {
      FD_CHECK(labels.empty(), ErrorCode::Argument, op, ": this network has no class embedding, but ", labels.size(),
               " class labels were given");
    }
    Weights root(&params, "");

    TensorPtr emb = ctx.point("time_embedding", [&] {
      TensorPtr e = timestep_mlp(root.sub("time_embedding"), ops::timestep_embedding(t, embed_, true, 0.f, 1.f, 10000.f));
      if (num_classes_ > 0) e = ops::add(e, ops::embedding(root.sub("class_embedding")("weight"), labels));
      return e;
    });
    TensorPtr e = silu(emb);
    TensorPtr h = linear(root.sub("in_proj"), x->dim() == 2 ? x : ops::reshape(x, {B, in_}));
    for (int64_t i = 0; i < layers_; ++i) {
      h = ctx.point(points_[size_t(i) + 1], [&] {
        Weights l = root.sub("layers").sub(i);
        TensorPtr a = silu(ops::add(linear(l.sub("linear"), h), linear(l.sub("emb_proj"), e)));
        return ops::add(h, ctx.dropout(a, dropout_));
      });
    }
    TensorPtr out = ctx.point("output", [&] { return linear(root.sub("out_proj"), h); });
    return x->dim() == 2 ? out : ops::reshape(out, x->shape);
  }

 private:
  int64_t in_ = 0, hidden_ = 0, layers_ = 0, embed_ = 0, num_classes_ = 0;
  float dropout_ = 0.f;
  std::vector<std::string> points_;
};

}  // namespace

std::unique_ptr<Network> make_mlp(const ConfigReader& config) { return std::make_unique<MLP>(config); }

}  // namespace fd::nn
