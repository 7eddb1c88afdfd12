// DiTTransformer2DModel: diffusers' DiT (Peebles & Xie, arXiv 2212.09748) with the same config keys
// and the same weight names (diffusers 0.30–0.38, models/transformers/dit_transformer_2d.py).
//
//   x [B, C, H, W] (H, W multiples of patch_size p; h = H/p, w = W/p, N = h·w, D = heads·head_dim)
//   pos_embed     conv p×p stride p (done as patchify + linear on the reshaped conv weight: the same sum)
//                 + 2-D sin-cos positions computed for (h, w) like PatchEmbed: base_size = sample_size/p,
//                 interpolation_scale 1, grid_h = i / (h/base) (float32), first D/2 channels encode the
//                 column, the last D/2 the row, sin/cos in float64 rounded to float32.  → [B, N, D]
//   t_proj        Timesteps(256, flip_sin_to_cos, downscale_freq_shift 1) of t (computed once, shared)
//   block i       emb   = norm1.emb: timestep_embedder(t_proj) + class_embedder.embedding_table[label]
//                 mod   = norm1.linear(SiLU(emb)) → shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
//                 a     = attn1(LN(h)·(1 + scale_msa) + shift_msa)          (LN eps 1e-6, no affine)
//                 h     = h + gate_msa·a
//                 f     = ff(norm3(h)·(1 + scale_mlp) + shift_mlp)          (norm3: eps norm_eps, affine per config;
//                                                                             ff: Linear → GELU(tanh) → Linear)
//                 h     = h + gate_mlp·f
//   final layer   shift, scale = proj_out_1(SiLU(emb of block 0))           (diffusers calls block 0's embedder again:
//                                                                             the same value, reused here)
//                 out = proj_out_2(norm_out(h)·(1 + scale) + shift)          → [B, N, p·p·C_out] → unpatchify
//
// Output: all C_out channels (learned sigma: C_out = 2·C_in, the caller splits), like diffusers. Unlike
// diffusers (whose unpatchify assumes a square grid) any h×w works.
//
// Class labels: the table has num_classes + 1 rows when class_dropout_prob > 0 (always in diffusers, which
// hard-codes 0.1): row num_classes is the null class of classifier-free guidance, and is accepted as a label.
// In train mode labels are replaced by the null class with probability class_dropout_prob (diffusers'
// LabelEmbedding.token_drop), drawn once per forward from the context's dropout stream and shared by every
// block (diffusers draws separately in each block's embedder; eval mode is identical either way).
//
// Points (forward order): pos_embed; per block transformer_blocks.{i}.norm1.emb, .norm1.linear ([B, 6D]
// modulation), .norm1.0, .attn1 (attention branch before the gate: the FRDiff cache point — on reuse norm1.0
// and the attention are skipped, the gate is recomputed at the current t), .norm3 (plain norm3 output, before
// modulation), .ff (MLP branch before the gate; on reuse norm3 and the MLP are skipped), transformer_blocks.{i}
// (block output; on reuse the whole block is skipped); norm_out (before modulation), proj_out_1, proj_out_2
// (before unpatchify). A point nested in a reused one is not computed, so it is neither stored nor returned.
// The modulations run fused into their layer norms (per-sample weight and bias), so the plain norm3 / norm_out
// values are computed beside them only when observed.
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

#include "core/rng.h"
#include "nn/layers.h"
#include "nn/network.h"
#include "ops/ops.h"

namespace fd::nn {
namespace {

constexpr int64_t kTimeProjDim = 256;  // CombinedTimestepLabelEmbeddings: Timesteps(num_channels=256)
constexpr float kAdaNormEps = 1e-6f;   // AdaLayerNormZero.norm and norm_out

// 2-D sin-cos positional embedding [1, h·w, D] for a grid of h×w patches, as diffusers'
// get_2d_sincos_pos_embed(D, (h, w), base_size, interpolation_scale, output_type="pt").
TensorPtr sincos_positions(int64_t D, int64_t h, int64_t w, int64_t base_size, double interpolation_scale) {
  const int64_t quarter = D / 4;  // each 1-D embedding has D/2 channels: D/4 sin, D/4 cos
  std::vector<double> omega(quarter);
  for (int64_t k = 0; k < quarter; ++k) omega[k] = 1.0 / std::pow(10000.0, double(k) / double(quarter));
  // Grid coordinates in float32, like torch.arange(float32) / (size / base_size) / interpolation_scale.
  auto coords = [&](int64_t n) {
    std::vector<float> c(n);
    const float step = float(double(n) / double(base_size));
    for (int64_t i = 0; i < n; ++i) c[i] = float(i) / step / float(interpolation_scale);
    return c;
  };
  const std::vector<float> gh = coords(h), gw = coords(w);
  std::vector<float> out(size_t(h * w * D));
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      float* row = out.data() + (i * w + j) * D;
      // meshgrid(grid_w, grid_h, indexing="xy"): grid[0] (first D/2 channels) is the column coordinate.
      const double pos[2] = {double(gw[j]), double(gh[i])};
      for (int half = 0; half < 2; ++half)
        for (int64_t k = 0; k < quarter; ++k) {
          const double a = pos[half] * omega[k];
          row[half * 2 * quarter + k] = float(std::sin(a));
          row[half * 2 * quarter + quarter + k] = float(std::cos(a));
        }
    }
  return ops::from_data(out.data(), {1, h * w, D});
}

// x·(1 + scale) + shift with x [B, N, D] and scale, shift [B, D] (AdaLayerNormZero's modulation).
TensorPtr modulate(const TensorPtr& x, const TensorPtr& shift, const TensorPtr& scale) {
  const int64_t B = scale->shape[0], D = scale->shape[1];
  TensorPtr s1 = ops::reshape(ops::unary(ops::Unary::Affine, scale, 1.f, 1.f), {B, 1, D});
  return ops::add(ops::mul(x, s1), ops::reshape(shift, {B, 1, D}));
}

// The same as modulate(LN(x; w, b), shift, scale) in one layer-norm pass: (1 + scale) and shift become per-sample
// weight and bias, and an affine norm's own w, b fold in: (x̂·w + b)·(1 + s) + t = x̂·(w·(1 + s)) + (b·(1 + s) + t).
TensorPtr modulated_layer_norm(const TensorPtr& x, const TensorPtr& w, const TensorPtr& b, float eps,
                               const TensorPtr& shift, const TensorPtr& scale) {
  TensorPtr s1 = ops::unary(ops::Unary::Affine, scale, 1.f, 1.f);
  return ops::layer_norm(x, w ? ops::mul(s1, w) : s1, b ? ops::add(ops::mul(s1, b), shift) : shift, eps);
}

// modulate(norm, shift, scale) for a norm whose plain output is the point `point`: the caller visits the point
// (computing `norm`) only when someone observes it; the output uses the point's value only when it is served from
// the cache or blended under a gate, and the fused pass otherwise — so observing never changes the output's bits.
TensorPtr modulated_point(ForwardContext& ctx, const std::string& point, const TensorPtr& norm, const TensorPtr& x,
                          const TensorPtr& w, const TensorPtr& b, float eps, const TensorPtr& shift,
                          const TensorPtr& scale) {
  if (ctx.will_reuse(point) || ctx.gated(point)) return modulate(norm, shift, scale);
  return modulated_layer_norm(x, w, b, eps, shift, scale);
}

// h + gate·branch with gate [B, D] broadcast over tokens, in one pass.
TensorPtr gated_residual(const TensorPtr& h, const TensorPtr& gate, const TensorPtr& branch) {
  const int64_t B = gate->shape[0], D = gate->shape[1];
  return ops::mul_add(branch, ops::reshape(gate, {B, 1, D}), h);
}

class DiT final : public Network {
 public:
  explicit DiT(const ConfigReader& c) {
    const char* op = "DiTTransformer2DModel";
    heads_ = c.integer("num_attention_heads");
    head_dim_ = c.integer("attention_head_dim");
    in_ch_ = c.integer("in_channels");
    out_ch_ = c.has("out_channels") ? c.integer("out_channels") : in_ch_;
    layers_ = c.integer("num_layers");
    dropout_ = float(c.number("dropout"));
    attention_bias_ = c.boolean("attention_bias");
    sample_size_ = c.integer("sample_size");
    patch_ = c.integer("patch_size");
    const std::string act = c.string("activation_fn");
    FD_CHECK(act == "gelu-approximate" || act == "gelu", ErrorCode::Argument, op,
             ": config 'activation_fn' must be 'gelu-approximate' or 'gelu', got '", act, "'");
    gelu_ = act == "gelu" ? ops::Unary::GeluErf : ops::Unary::GeluTanh;
    FD_CHECK(c.has("num_embeds_ada_norm"), ErrorCode::Argument, op,
             ": config 'num_embeds_ada_norm' is required with norm_type 'ada_norm_zero'");
    num_classes_ = c.integer("num_embeds_ada_norm");
    const std::string norm_type = c.string("norm_type");
    FD_CHECK(norm_type == "ada_norm_zero", ErrorCode::Argument, op,
             ": config 'norm_type' must be 'ada_norm_zero' (the only DiT norm diffusers implements), got '", norm_type,
             "'");
    affine_ = c.boolean("norm_elementwise_affine");
    norm_eps_ = float(c.number("norm_eps"));
    class_dropout_ = c.has("class_dropout_prob") ? float(c.number("class_dropout_prob")) : 0.1f;
    // norm_num_groups and upcast_attention do not change a float32 DiT (diffusers ignores the former).
    inner_ = heads_ * head_dim_;
    auto positive = [&](const char* key, int64_t v) {
      FD_CHECK(v > 0, ErrorCode::Argument, op, ": config '", key, "' must be positive, got ", v);
    };
    positive("num_attention_heads", heads_);
    positive("attention_head_dim", head_dim_);
    positive("in_channels", in_ch_);
    positive("out_channels", out_ch_);
    positive("sample_size", sample_size_);
    positive("patch_size", patch_);
    positive("num_embeds_ada_norm", num_classes_);
    positive("num_layers", layers_);  // the final layer uses block 0's embedder
    FD_CHECK(inner_ % 4 == 0, ErrorCode::Argument, op,
             ": num_attention_heads × attention_head_dim must be a multiple of 4 for the 2-D sin-cos positions, got ",
             inner_);
    FD_CHECK(sample_size_ >= patch_, ErrorCode::Argument, op, ": config 'sample_size' (", sample_size_,
             ") is smaller than 'patch_size' (", patch_, ")");
    FD_CHECK(dropout_ >= 0.f && dropout_ < 1.f, ErrorCode::Argument, op, ": config 'dropout' must be in [0, 1), got ",
             dropout_);
    FD_CHECK(class_dropout_ >= 0.f && class_dropout_ <= 1.f, ErrorCode::Argument, op,
             ": config 'class_dropout_prob' must be in [0, 1], got ", class_dropout_);
    FD_CHECK(norm_eps_ > 0.f, ErrorCode::Argument, op, ": config 'norm_eps' must be positive, got ", norm_eps_);
    base_size_ = sample_size_ / patch_;

    points_.push_back("pos_embed");
    for (int64_t i = 0; i < layers_; ++i) {
      const std::string b = block(i);
      for (const char* leaf : {".norm1.emb", ".norm1.linear", ".norm1.0", ".attn1", ".norm3", ".ff", "", ".residual"})
        points_.push_back(b + leaf);
      reuse_points_.push_back(b + ".attn1");
    }
    for (const char* p : {"norm_out", "proj_out_1", "proj_out_2"}) points_.push_back(p);
  }

  const char* kind() const override { return "DiTTransformer2DModel"; }
  int64_t num_classes() const override { return num_classes_; }
  int64_t null_class() const override { return table_rows() > num_classes_ ? num_classes_ : -1; }
  std::vector<std::string> points() const override { return points_; }
  std::vector<std::string> reuse_points() const override { return reuse_points_; }
  // DeepCache on a DiT: the residual (output − input) of every block but the first and last `branch` + 1,
  // so a retrieve step runs only the shallow blocks at both ends (the Δ-caching of Δ-DiT / FORA).
  std::vector<std::string> deep_points(int64_t branch) const override {
    const int64_t keep = branch + 1;
    FD_CHECK(branch >= 0 && layers_ - 2 * keep >= 1, ErrorCode::Argument, "DiTTransformer2DModel: DeepCache branch ",
             branch, " leaves no deep block among ", layers_, " (keeps ", keep, " at each end)");
    std::vector<std::string> out;
    for (int64_t i = keep; i < layers_ - keep; ++i) out.push_back(block(i) + ".residual");
    return out;
  }

  std::vector<ParamSpec> specs() const override {
    std::vector<ParamSpec> out;
    SpecList s(&out);
    const int64_t D = inner_;
    s.sub("pos_embed").conv("proj", in_ch_, D, patch_);
    for (int64_t i = 0; i < layers_; ++i) {
      SpecList b = s.sub("transformer_blocks").sub(i);
      SpecList emb = b.sub("norm1").sub("emb");
      timestep_mlp_specs(emb.sub("timestep_embedder"), kTimeProjDim, D);
      emb.sub("class_embedder").embedding("embedding_table", table_rows(), D);
      b.sub("norm1").linear("linear", D, 6 * D);
      self_attention_specs(b.sub("attn1"), D, heads_, head_dim_, attention_bias_, true);
      if (affine_) b.norm("norm3", D);
      b.sub("ff").sub("net").sub("0").linear("proj", D, 4 * D);
      b.sub("ff").sub("net").linear("2", 4 * D, D);
    }
    s.linear("proj_out_1", D, 2 * D);
    s.linear("proj_out_2", D, patch_ * patch_ * out_ch_);
    return out;
  }

  TensorPtr forward(const TensorPtr& x, const TensorPtr& t, const std::vector<int32_t>& labels,
                    ForwardContext& ctx) const override {
    const char* op = "DiTTransformer2DModel";
    FD_CHECK(x->dim() == 4 && x->shape[1] == in_ch_, ErrorCode::Shape, op, ": expected a sample [B, ", in_ch_,
             ", H, W], got ", shape_str(x->shape));
    const int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3], p = patch_, D = inner_;
    FD_CHECK(H > 0 && W > 0 && H % p == 0 && W % p == 0, ErrorCode::Shape, op, ": sample ", shape_str(x->shape),
             " has H×W = ", H, "×", W, ", which is not a multiple of the patch size ", p);
    FD_CHECK(t->dim() == 1 && t->shape[0] == B, ErrorCode::Shape, op, ": timestep ", shape_str(t->shape),
             " does not match the batch of sample ", shape_str(x->shape), " (expected [", B, "])");
    FD_CHECK(int64_t(labels.size()) == B, ErrorCode::Argument, op, ": class labels are required (one per sample: ",
             B, "), got ", labels.size());
    const int64_t rows = table_rows();
    for (size_t i = 0; i < labels.size(); ++i)
      FD_CHECK(labels[i] >= 0 && labels[i] < rows, ErrorCode::Argument, op, ": class label ", labels[i], " at ", i,
               " is not in [0, ", num_classes_, rows > num_classes_ ? "] (the last is the null class)" : ")");
    const int64_t h = H / p, w = W / p, N = h * w;
    Weights root(&params, "");

    // ---- patch embedding + positions ----
    TensorPtr hs = ctx.point("pos_embed", [&] {
      // [B, C, h, p, w, p] → [B, h, w, C, p, p] → [B, N, C·p·p] · conv weight [D, C·p·p]ᵀ
      TensorPtr patches = ops::reshape(
          ops::permute(ops::reshape(x, {B, in_ch_, h, p, w, p}), {0, 2, 4, 1, 3, 5}), {B, N, in_ch_ * p * p});
      Weights proj = root.sub("pos_embed").sub("proj");
      TensorPtr weight = ops::reshape(proj("weight"), {D, in_ch_ * p * p});
      return ops::add(ops::linear(patches, weight, proj("bias")), positions(h, w, x->device()));
    });

    // ---- conditioning inputs shared by every block ----
    std::vector<int32_t> ids = labels;
    if (ctx.training && ctx.label_dropout && class_dropout_ > 0.f) {
      std::vector<float> u(static_cast<size_t>(B));
      fill_uniform(u.data(), B, ctx.seed, ctx.offset, 0.f, 1.f);
      ctx.offset += philox_blocks(B);
      for (int64_t b = 0; b < B; ++b)
        if (u[b] < class_dropout_) ids[b] = int32_t(num_classes_);
    }
    TensorPtr t_proj = ops::timestep_embedding(t, kTimeProjDim, true, 1.f, 1.f, 10000.f);

    // Block 0's conditioning embedding (the final layer uses it too).
    auto embed = [&](int64_t i) {
      Weights e = root.sub("transformer_blocks").sub(i).sub("norm1").sub("emb");
      return ops::add(timestep_mlp(e.sub("timestep_embedder"), t_proj),
                      ops::embedding(e.sub("class_embedder").sub("embedding_table")("weight"), ids));
    };
    TensorPtr cond0;
    // Each branch computes the points that only it consumes inside its own point, so a reused point skips
    // them too: attn1 skips norm1.0 and the attention; ff skips norm3 and the MLP; a reused block output
    // (transformer_blocks.{i}, DeepCache-style) skips the whole block.
    for (int64_t i = 0; i < layers_; ++i) {
      const std::string name = block(i);
      Weights bw = root.sub("transformer_blocks").sub(i);
      const auto run_block = [&] {
        TensorPtr emb = ctx.point(name + ".norm1.emb", [&] { return embed(i); });
        if (i == 0) cond0 = emb;
        TensorPtr mod = ctx.point(name + ".norm1.linear", [&] { return linear(bw.sub("norm1").sub("linear"), silu(emb)); });
        const auto m = ops::split(mod, {D, D, D, D, D, D}, 1);  // shift/scale/gate msa, shift/scale/gate mlp
        // h + gate·branch, where the branch ends in a linear (last_input: that linear's input; the attention's
        // dropout follows it, the MLP's precedes it): when nobody observes the branch's point and no dropout
        // follows, the gated residual runs in that linear's GEMM.
        const auto branch = [&](const std::string& point, const TensorPtr& h, const TensorPtr& gate,
                                const std::function<TensorPtr()>& last_input, const Weights& projection,
                                bool dropout_after) {
          const float p_after = dropout_after ? dropout_ : 0.f;
          if (!ctx.observes(point) && !ctx.gated(point) && !(ctx.training && p_after > 0.f))
            return linear(projection, last_input(), {std::nullopt, gate, h});
          return gated_residual(h, gate, ctx.point(point, [&] {
            return ctx.dropout(linear(projection, last_input()), p_after);
          }));
        };
        Weights net = bw.sub("ff").sub("net");
        TensorPtr mid = branch(name + ".attn1", hs, m[2], [&] {
          TensorPtr normed = ctx.point(name + ".norm1.0", [&] {
            return modulated_layer_norm(hs, nullptr, nullptr, kAdaNormEps, m[0], m[1]);
          });
          return self_attention_heads(bw.sub("attn1"), normed, heads_, head_dim_);
        }, bw.sub("attn1").sub("to_out").sub(0), true);
        return branch(name + ".ff", mid, m[5], [&] {
          const std::string n3 = name + ".norm3";
          Weights norm3 = bw.sub("norm3");
          TensorPtr plain = ctx.observes(n3) ? ctx.point(n3, [&] { return layer_norm(norm3, mid, norm_eps_, affine_); })
                                             : nullptr;
          TensorPtr modulated = modulated_point(ctx, n3, plain, mid, affine_ ? norm3("weight") : nullptr,
                                                affine_ ? norm3("bias") : nullptr, norm_eps_, m[3], m[4]);
          // the GELU in the GEMM's epilogue
          return ctx.dropout(linear(net.sub("0").sub("proj"), modulated, {gelu_, nullptr, nullptr}), dropout_);
        }, net.sub("2"), false);
      };
      // ".residual" = output − input. Reused, the block is skipped: input + cached residual. Gated (Auto-FR),
      // the blended residual feeds on. Otherwise the block runs as usual and the residual is only computed
      // beside it when someone observes it (so storing it never changes the output's bits).
      const std::string residual = name + ".residual";
      const TensorPtr in = hs;
      if (ctx.will_reuse(residual)) {
        hs = ctx.point(name, [&] {
          return ops::add(in, ctx.point(residual, [&]() -> TensorPtr { fail(ErrorCode::Internal, residual, " is reused"); }));
        });
      } else if (ctx.gated(residual)) {
        hs = ctx.point(name, [&] { return ops::add(in, ctx.point(residual, [&] { return ops::sub(run_block(), in); })); });
      } else {
        hs = ctx.point(name, run_block);
        if (ctx.observes(residual)) ctx.point(residual, [&] { return ops::sub(hs, in); });
      }
    }
    if (!cond0) cond0 = embed(0);  // block 0 was reused whole: diffusers' second call of its embedder

    // ---- final layer (norm_out and proj_out_1 feed only proj_out_2) ----
    TensorPtr out = ctx.point("proj_out_2", [&] {
      TensorPtr plain = ctx.observes("norm_out")
                            ? ctx.point("norm_out", [&] { return ops::layer_norm(hs, nullptr, nullptr, kAdaNormEps); })
                            : nullptr;
      TensorPtr ss = ctx.point("proj_out_1", [&] { return linear(root.sub("proj_out_1"), silu(cond0)); });
      const auto shift_scale = ops::split(ss, {D, D}, 1);
      return linear(root.sub("proj_out_2"), modulated_point(ctx, "norm_out", plain, hs, nullptr, nullptr, kAdaNormEps,
                                                            shift_scale[0], shift_scale[1]));
    });
    // unpatchify: [B, h, w, p, p, C] → [B, C, h, p, w, p]
    return ops::reshape(ops::permute(ops::reshape(out, {B, h, w, p, p, out_ch_}), {0, 5, 1, 3, 2, 4}),
                        {B, out_ch_, H, W});
  }

 private:
  static std::string block(int64_t i) { return "transformer_blocks." + std::to_string(i); }
  int64_t table_rows() const { return num_classes_ + (class_dropout_ > 0.f ? 1 : 0); }

  // Positions for an h×w grid, kept for the last few sizes (they are constants: no gradient).
  TensorPtr positions(int64_t h, int64_t w, Device device) const {
    std::lock_guard<std::mutex> lock(pos_mutex_);
    const auto key = std::make_tuple(h, w, device.str());
    auto it = pos_cache_.find(key);
    if (it != pos_cache_.end()) return it->second;
    if (pos_cache_.size() >= 8) pos_cache_.clear();
    TensorPtr pos = ops::to_device(sincos_positions(inner_, h, w, base_size_, 1.0), device);
    pos_cache_[key] = pos;
    return pos;
  }

  int64_t heads_ = 0, head_dim_ = 0, inner_ = 0, in_ch_ = 0, out_ch_ = 0, layers_ = 0, sample_size_ = 0, patch_ = 0;
  int64_t num_classes_ = 0, base_size_ = 1;
  float dropout_ = 0.f, norm_eps_ = 1e-5f, class_dropout_ = 0.1f;
  bool attention_bias_ = true, affine_ = false;
  ops::Unary gelu_ = ops::Unary::GeluTanh;
  std::vector<std::string> points_, reuse_points_;
  mutable std::mutex pos_mutex_;
  mutable std::map<std::tuple<int64_t, int64_t, std::string>, TensorPtr> pos_cache_;  // (h, w, device)
};

}  // namespace

std::unique_ptr<Network> make_dit(const ConfigReader& config) { return std::make_unique<DiT>(config); }

}  // namespace fd::nn
