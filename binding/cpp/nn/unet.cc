// diffusers UNet2DModel on the op set (DESIGN.md §4; METHODS.md §6 for the cache points).
//
// Structure, parameter names and the math follow diffusers' unet_2d.py / unet_2d_blocks.py /
// resnet.py / attention_processor.py (AttnProcessor2_0) exactly:
//   time_proj (sinusoidal | Gaussian Fourier of log σ | learned table) → time_embedding (MLP)
//   [+ class_embedding] → conv_in → down blocks (ResnetBlock2D [+ Attention] × L, Downsample2D)
//   → mid block (ResNet, Attention, ResNet) → up blocks (concat skip, ResNet [+ Attention] × (L+1),
//   Upsample2D) → GroupNorm → SiLU → conv_out [→ ÷σ for Fourier].
// The ResNet/attention/resampler units live in unet_blocks.cc.
//
// Named points (forward order; ForwardContext::point): time_proj, time_embedding,
// class_embedding, conv_in, then per unit "<module>.conv1" / "<module>.to_out" (the FRDiff cache
// points) and "<module>" (the unit output), per block "<block>", then conv_norm_out, conv_act,
// conv_out. Down-block points ("down_blocks.i") are pass-through captures of the block's hidden
// output: the block's work happens in its units (whose outputs are also the skip tensors), so
// reusing "down_blocks.i" only replaces the value handed on, it saves nothing. Mid and up blocks
// are real points: reusing one skips its whole computation.
#include "nn/unet.h"

#include <cmath>
#include <limits>

#include "core/stream.h"
#include "nn/layers.h"
#include "ops/ops.h"

namespace fd::nn {
namespace unet {

static std::string strip_prefix(const std::string& type) {
  return type.rfind("UNetRes", 0) == 0 ? type.substr(7) : type;  // diffusers' get_down_block/get_up_block
}

Config read_config(const ConfigReader& c) {
  Config o;
  o.in_channels = c.integer("in_channels");
  o.out_channels = c.integer("out_channels");
  o.center_input = c.boolean("center_input_sample");
  const std::string time = c.string("time_embedding_type");
  if (time == "positional") o.time = TimeKind::Positional;
  else if (time == "fourier") o.time = TimeKind::Fourier;
  else if (time == "learned") o.time = TimeKind::Learned;
  else fail(ErrorCode::Argument, kKind, ": config 'time_embedding_type' must be positional, fourier or learned, got '", time, "'");
  o.flip_sin_to_cos = c.boolean("flip_sin_to_cos");
  o.freq_shift = float(c.number("freq_shift"));
  o.channels = c.integers("block_out_channels");
  FD_CHECK(!o.channels.empty(), ErrorCode::Argument, kKind, ": config 'block_out_channels' is empty");
  for (int64_t ch : o.channels)
    FD_CHECK(ch > 0, ErrorCode::Argument, kKind, ": config 'block_out_channels' must be positive");
  const int64_t c0 = o.channels[0];
  o.time_input_dim = o.time == TimeKind::Fourier ? 2 * c0 : c0;
  o.temb = c.has("time_embedding_dim") ? c.integer("time_embedding_dim") : 4 * c0;
  FD_CHECK(o.temb > 0, ErrorCode::Argument, kKind, ": config 'time_embedding_dim' must be positive");
  if (o.time == TimeKind::Learned) {
    FD_CHECK(c.has("num_train_timesteps") && c.integer("num_train_timesteps") > 0, ErrorCode::Argument, kKind,
             ": time_embedding_type 'learned' needs a positive 'num_train_timesteps'");
    o.num_train_timesteps = c.integer("num_train_timesteps");
  }
  o.layers = c.integer("layers_per_block");
  FD_CHECK(o.layers >= 1, ErrorCode::Argument, kKind, ": config 'layers_per_block' must be >= 1");
  o.groups = c.integer("norm_num_groups");
  o.eps = float(c.number("norm_eps"));
  o.dropout = float(c.number("dropout"));
  o.mid_scale = float(c.number("mid_block_scale_factor"));
  o.downsample_padding = c.integer("downsample_padding");
  FD_CHECK(o.downsample_padding == 0 || o.downsample_padding == 1, ErrorCode::Argument, kKind,
           ": config 'downsample_padding' must be 0 or 1, got ", o.downsample_padding);
  const std::string shift = c.string("resnet_time_scale_shift");
  FD_CHECK(shift == "default" || shift == "scale_shift", ErrorCode::Argument, kKind,
           ": config 'resnet_time_scale_shift' must be default or scale_shift, got '", shift, "'");
  o.scale_shift = shift == "scale_shift";
  FD_CHECK(c.string("act_fn") == "silu" || c.string("act_fn") == "swish", ErrorCode::Argument, kKind,
           ": config 'act_fn' must be silu, got '", c.string("act_fn"), "'");

  if (c.has("class_embed_type")) {
    const std::string ce = c.string("class_embed_type");
    FD_CHECK(ce == "timestep", ErrorCode::Argument, kKind, ": config 'class_embed_type' must be null or timestep, got '", ce, "'");
    o.cls = ClassKind::Timestep;
    o.num_classes = c.has("num_class_embeds") ? c.integer("num_class_embeds") : std::numeric_limits<int32_t>::max();
  } else if (c.has("num_class_embeds")) {
    o.cls = ClassKind::Embedding;
    o.num_classes = c.integer("num_class_embeds");
    FD_CHECK(o.num_classes > 0, ErrorCode::Argument, kKind, ": config 'num_class_embeds' must be positive");
  }
  if (c.has("null_class")) {
    o.null_class = c.integer("null_class");
    FD_CHECK(o.cls == ClassKind::Embedding && o.num_classes >= 2 && o.null_class == o.num_classes - 1, ErrorCode::Argument, kKind,
             ": config 'null_class' must be the last row of the class table (num_class_embeds - 1 = ", o.num_classes - 1,
             "), got ", o.null_class);
  }

  const auto down_types = c.strings("down_block_types");
  const auto up_types = c.strings("up_block_types");
  const int64_t n = int64_t(o.channels.size());
  FD_CHECK(int64_t(down_types.size()) == n && int64_t(up_types.size()) == n, ErrorCode::Argument, kKind,
           ": config 'down_block_types' (", down_types.size(), "), 'up_block_types' (", up_types.size(),
           ") and 'block_out_channels' (", n, ") must have the same length");
  const bool has_head_dim = c.has("attention_head_dim");
  const int64_t head_dim_cfg = has_head_dim ? c.integer("attention_head_dim") : 0;
  const std::string down_sampler = c.string("downsample_type"), up_sampler = c.string("upsample_type");
  FD_CHECK(down_sampler == "conv" || down_sampler == "resnet", ErrorCode::Argument, kKind,
           ": config 'downsample_type' must be conv or resnet, got '", down_sampler, "'");
  FD_CHECK(up_sampler == "conv" || up_sampler == "resnet", ErrorCode::Argument, kKind,
           ": config 'upsample_type' must be conv or resnet, got '", up_sampler, "'");

  auto attention = [&](const std::string& name, int64_t ch, int64_t groups, float rescale) {
    AttnUnit a;
    a.name = name, a.channels = ch, a.groups = groups, a.rescale = rescale;
    a.head_dim = has_head_dim ? head_dim_cfg : ch;
    FD_CHECK(a.head_dim > 0 && ch / a.head_dim >= 1, ErrorCode::Argument, kKind, ": config 'attention_head_dim' ",
             a.head_dim, " is larger than the ", ch, " channels of ", name);
    a.heads = ch / a.head_dim;
    return a;
  };
  auto resnet = [&](const std::string& name, int64_t in, int64_t out, Resample r, float scale) {
    ResnetUnit u;
    u.name = name, u.in = in, u.out = out, u.resample = r, u.scale = scale;
    return u;
  };

  // Down blocks (UNet2DModel.__init__ + get_down_block).
  int64_t output = o.channels[0];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t input = output;
    output = o.channels[i];
    const bool final_block = i == n - 1;
    const std::string type = strip_prefix(down_types[i]);
    FD_CHECK(type == "DownBlock2D" || type == "AttnDownBlock2D", ErrorCode::Argument, kKind,
             ": config 'down_block_types' entry '", down_types[i], "' is not supported (DownBlock2D, AttnDownBlock2D)");
    Block b;
    b.name = "down_blocks." + std::to_string(i);
    b.channels = output;
    for (int64_t j = 0; j < o.layers; ++j) {
      b.resnets.push_back(resnet(b.name + ".resnets." + std::to_string(j), j == 0 ? input : output, output,
                                 Resample::None, 1.f));
      if (type == "AttnDownBlock2D")
        b.attentions.push_back(attention(b.name + ".attentions." + std::to_string(j), output, o.groups, 1.f));
    }
    if (!final_block) {
      // DownBlock2D always downsamples with a conv; AttnDownBlock2D follows downsample_type.
      b.sampler = type == "AttnDownBlock2D" && down_sampler == "resnet" ? Sampler::Resnet : Sampler::Conv;
      b.sampler_resnet = resnet(b.name + ".downsamplers.0", output, output, Resample::Down, 1.f);
    }
    o.down.push_back(std::move(b));
  }

  // Mid block (UNetMidBlock2D with num_layers = 1).
  o.has_mid = c.has("mid_block_type");
  if (o.has_mid) {
    FD_CHECK(c.string("mid_block_type") == "UNetMidBlock2D", ErrorCode::Argument, kKind,
             ": config 'mid_block_type' must be UNetMidBlock2D or null, got '", c.string("mid_block_type"), "'");
    const int64_t ch = o.channels[n - 1];
    o.mid.name = "mid_block";
    o.mid.channels = ch;
    o.mid.resnets.push_back(resnet("mid_block.resnets.0", ch, ch, Resample::None, o.mid_scale));
    if (c.boolean("add_attention")) {
      const int64_t attn_groups =
          c.has("attn_norm_num_groups") ? c.integer("attn_norm_num_groups") : (o.scale_shift ? 0 : o.groups);
      o.mid.attentions.push_back(attention("mid_block.attentions.0", ch, attn_groups, o.mid_scale));
    }
    o.mid.resnets.push_back(resnet("mid_block.resnets.1", ch, ch, Resample::None, o.mid_scale));
  }

  // Up blocks (get_up_block with num_layers = layers_per_block + 1).
  output = o.channels[n - 1];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t prev = output;
    output = o.channels[n - 1 - i];
    const int64_t input = o.channels[std::max<int64_t>(n - 2 - i, 0)];
    const bool final_block = i == n - 1;
    const std::string type = strip_prefix(up_types[i]);
    FD_CHECK(type == "UpBlock2D" || type == "AttnUpBlock2D", ErrorCode::Argument, kKind,
             ": config 'up_block_types' entry '", up_types[i], "' is not supported (UpBlock2D, AttnUpBlock2D)");
    Block b;
    b.name = "up_blocks." + std::to_string(i);
    b.channels = output;
    for (int64_t j = 0; j <= o.layers; ++j) {
      const int64_t skip = j == o.layers ? input : output;
      const int64_t in = j == 0 ? prev : output;
      b.resnets.push_back(resnet(b.name + ".resnets." + std::to_string(j), in + skip, output, Resample::None, 1.f));
      if (type == "AttnUpBlock2D")
        b.attentions.push_back(attention(b.name + ".attentions." + std::to_string(j), output, o.groups, 1.f));
    }
    if (!final_block) {
      b.sampler = type == "AttnUpBlock2D" && up_sampler == "resnet" ? Sampler::Resnet : Sampler::Conv;
      b.sampler_resnet = resnet(b.name + ".upsamplers.0", output, output, Resample::Up, 1.f);
    }
    o.up.push_back(std::move(b));
  }

  // Every GroupNorm's channel count must split into its groups.
  auto check_groups = [&](int64_t ch, int64_t groups, const char* key, const std::string& where) {
    FD_CHECK(groups > 0 && ch % groups == 0, ErrorCode::Argument, kKind, ": config '", key, "' = ", groups,
             " does not divide the ", ch, " channels of ", where);
  };
  auto check_block = [&](const Block& b) {
    for (const auto& r : b.resnets) {
      check_groups(r.in, o.groups, "norm_num_groups", r.name + ".norm1");
      check_groups(r.out, o.groups, "norm_num_groups", r.name + ".norm2");
    }
    for (const auto& a : b.attentions)
      if (a.groups) check_groups(a.channels, a.groups, b.name == "mid_block" ? "attn_norm_num_groups" : "norm_num_groups",
                                 a.name + ".group_norm");
    if (b.sampler == Sampler::Resnet) check_groups(b.channels, o.groups, "norm_num_groups", b.sampler_resnet.name);
  };
  for (const auto& b : o.down) check_block(b);
  if (o.has_mid) check_block(o.mid);
  for (const auto& b : o.up) check_block(b);
  check_groups(o.channels[0], o.groups, "norm_num_groups", "conv_norm_out");
  return o;
}

// ---- parameters (diffusers' state-dict names, module order) ----
static void resnet_specs(const Config& o, const SpecList& root, const ResnetUnit& u) {
  const SpecList s = root.sub(u.name);
  s.norm("norm1", u.in);
  s.conv("conv1", u.in, u.out, 3);
  s.linear("time_emb_proj", o.temb, o.scale_shift ? 2 * u.out : u.out);
  s.norm("norm2", u.out);
  s.conv("conv2", u.out, u.out, 3);
  if (u.in != u.out) s.conv("conv_shortcut", u.in, u.out, 1);
}

static void attention_specs(const SpecList& root, const AttnUnit& a) {
  const SpecList s = root.sub(a.name);
  if (a.groups) s.norm("group_norm", a.channels);
  self_attention_specs(s, a.channels, a.heads, a.head_dim);
}

static void block_specs(const Config& o, const SpecList& root, const Block& b, bool up) {
  for (const auto& a : b.attentions) attention_specs(root, a);  // registered before the resnets
  for (const auto& r : b.resnets) resnet_specs(o, root, r);
  if (b.sampler == Sampler::Conv)
    root.sub(b.name).sub(up ? "upsamplers" : "downsamplers").sub(0).conv("conv", b.channels, b.channels, 3);
  else if (b.sampler == Sampler::Resnet)
    resnet_specs(o, root, b.sampler_resnet);
}

// ---- the network ----
class UNet2D final : public Network {
 public:
  explicit UNet2D(Config config) : o_(std::move(config)), points_(list_points()) {
    for (const auto& name : points_) {
      const auto ends = [&](const std::string& suffix) {
        return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
      };
      if (ends(".conv1") || ends(".to_out")) reuse_points_.push_back(name);
    }
  }
  const char* kind() const override { return kKind; }
  // With a null class the last table row is the unconditional label, not a class.
  int64_t num_classes() const override { return o_.cls == ClassKind::None ? 0 : o_.num_classes - (o_.null_class >= 0); }
  int64_t null_class() const override { return o_.null_class; }

  std::vector<ParamSpec> specs() const override {
    std::vector<ParamSpec> out;
    const SpecList s(&out);
    const int64_t c0 = o_.channels[0];
    s.conv("conv_in", o_.in_channels, c0, 3);
    if (o_.time == TimeKind::Fourier)  // GaussianFourierProjection(C0, scale=16): W ~ N(0, 16²), frozen
      s.sub("time_proj").add("weight", {c0}, {Init::Normal, 16.f});
    else if (o_.time == TimeKind::Learned)
      s.embedding("time_proj", o_.num_train_timesteps, c0);
    timestep_mlp_specs(s.sub("time_embedding"), o_.time_input_dim, o_.temb);
    if (o_.cls == ClassKind::Embedding) s.embedding("class_embedding", o_.num_classes, o_.temb);
    if (o_.cls == ClassKind::Timestep) timestep_mlp_specs(s.sub("class_embedding"), o_.time_input_dim, o_.temb);
    for (const auto& b : o_.down) block_specs(o_, s, b, false);
    // UNet2DModel assigns mid_block after registering up_blocks: it comes after them in the state dict.
    for (const auto& b : o_.up) block_specs(o_, s, b, true);
    if (o_.has_mid) block_specs(o_, s, o_.mid, false);
    s.norm("conv_norm_out", c0);
    s.conv("conv_out", c0, o_.out_channels, 3);
    return out;
  }

  std::vector<std::string> points() const override { return points_; }
  std::vector<std::string> reuse_points() const override { return reuse_points_; }
  // DeepCache: serve the up block that feeds the shallowest `branch` + 1 up blocks from the cache (forward()
  // then skips it, everything deeper, and the down path below the skips those shallow blocks read).
  std::vector<std::string> deep_points(int64_t branch) const override {
    const int64_t n = int64_t(o_.up.size());
    FD_CHECK(branch >= 0 && branch <= n - 2, ErrorCode::Argument, kKind, ": DeepCache branch ", branch,
             " needs a branch in [0, ", n - 2, "] (", n, " up blocks)");
    return {o_.up[size_t(n - 2 - branch)].name};
  }

  TensorPtr forward(const TensorPtr& x, const TensorPtr& t, const std::vector<int32_t>& labels,
                    ForwardContext& ctx) const override;

 private:
  // The points in the order a full forward passes them (keep in step with forward()).
  std::vector<std::string> list_points() const {
    std::vector<std::string> p = {"time_proj", "time_embedding"};
    if (o_.cls != ClassKind::None) p.push_back("class_embedding");
    p.push_back("conv_in");
    auto resnet_points = [&](const ResnetUnit& u) {
      p.push_back(u.name + ".conv1");
      p.push_back(u.name);
    };
    auto unit_points = [&](const Block& b, size_t j) {
      resnet_points(b.resnets[j]);
      if (j < b.attentions.size()) {
        p.push_back(b.attentions[j].name + ".to_out");
        p.push_back(b.attentions[j].name);
      }
    };
    auto sampler_points = [&](const Block& b) {
      if (b.sampler == Sampler::Resnet) p.push_back(b.sampler_resnet.name + ".conv1");
      if (b.sampler != Sampler::None) p.push_back(b.sampler_resnet.name);
    };
    for (const auto& b : o_.down) {
      for (size_t j = 0; j < b.resnets.size(); ++j) unit_points(b, j);
      sampler_points(b);
      p.push_back(b.name);
    }
    if (o_.has_mid) {
      resnet_points(o_.mid.resnets[0]);
      if (!o_.mid.attentions.empty()) {
        p.push_back(o_.mid.attentions[0].name + ".to_out");
        p.push_back(o_.mid.attentions[0].name);
      }
      resnet_points(o_.mid.resnets[1]);
      p.push_back("mid_block");
    }
    for (const auto& b : o_.up) {
      for (size_t j = 0; j < b.resnets.size(); ++j) unit_points(b, j);
      sampler_points(b);
      p.push_back(b.name);
    }
    for (const char* name : {"conv_norm_out", "conv_act", "conv_out"}) p.push_back(name);
    return p;
  }

  TensorPtr time_proj(const TensorPtr& values, const std::vector<int32_t>* ids) const;
  Units units() const { return Units{o_, params}; }
  Config o_;
  std::vector<std::string> points_, reuse_points_;  // FRDiff: every ResNet conv1 and attention to_out
};

// Timestep (or, for class_embed_type "timestep", label) → time_proj features.
TensorPtr UNet2D::time_proj(const TensorPtr& values, const std::vector<int32_t>* ids) const {
  const int64_t c0 = o_.channels[0];
  switch (o_.time) {
    case TimeKind::Positional:  // Timesteps(C0, flip_sin_to_cos, freq_shift): get_timestep_embedding in float32
      return ops::timestep_embedding(values, c0, o_.flip_sin_to_cos, o_.freq_shift, 1.f, 10000.f);
    case TimeKind::Fourier: {
      // GaussianFourierProjection(log=True, flip_sin_to_cos=False): [sin, cos](2π·log(t)·W). W is a frozen
      // parameter in diffusers (requires_grad=False): used detached so it gets no gradient.
      const TensorPtr& w = params.get("time_proj.weight");
      return ops::gaussian_fourier_projection(ops::unary(ops::Unary::Log, values), alias(w, w->shape));
    }
    case TimeKind::Learned: {
      // nn.Embedding(num_train_timesteps, C0) indexed by the integer timesteps (read on the host).
      std::vector<int32_t> idx;
      if (ids) {
        idx = *ids;
      } else {
        current_stream().synchronize();
        for (int64_t b = 0; b < values->numel(); ++b) {
          const float v = values->data()[b];
          FD_CHECK(v == std::floor(v) && v >= 0.f && v < float(o_.num_train_timesteps), ErrorCode::Argument, kKind,
                   ": time_embedding_type 'learned' needs integer timesteps in [0, ", o_.num_train_timesteps,
                   "), got ", v, " at ", b);
          idx.push_back(int32_t(v));
        }
      }
      for (int32_t id : idx)
        FD_CHECK(id >= 0 && id < o_.num_train_timesteps, ErrorCode::Argument, kKind, ": timestep ", id,
                 " is outside the learned table of ", o_.num_train_timesteps);
      return ops::embedding(params.get("time_proj.weight"), idx);
    }
  }
  fail(ErrorCode::Internal, kKind, ": unknown time embedding");
}

TensorPtr UNet2D::forward(const TensorPtr& input, const TensorPtr& t, const std::vector<int32_t>& labels,
                          ForwardContext& ctx) const {
  // ---- argument checks, before any work ----
  const int64_t n = int64_t(o_.channels.size()), factor = int64_t(1) << (n - 1);
  FD_CHECK(input->dim() == 4, ErrorCode::Shape, kKind, ": expected a sample [B, C, H, W], got ", shape_str(input->shape));
  const int64_t B = input->shape[0];
  FD_CHECK(input->shape[1] == o_.in_channels, ErrorCode::Shape, kKind, ": input ", shape_str(input->shape), " has ",
           input->shape[1], " channels, the config has in_channels = ", o_.in_channels);
  FD_CHECK(input->shape[2] % factor == 0 && input->shape[3] % factor == 0 && input->shape[2] > 0 && input->shape[3] > 0,
           ErrorCode::Shape, kKind, ": input ", shape_str(input->shape), ": height and width must be multiples of ",
           factor, " (2^", n - 1, " for ", n, " levels)");
  FD_CHECK(t->dim() == 1 && t->shape[0] == B, ErrorCode::Shape, kKind, ": timesteps ", shape_str(t->shape),
           " do not match a batch of ", B);
  if (o_.cls == ClassKind::None) {
    FD_CHECK(labels.empty(), ErrorCode::Argument, kKind,
             ": class labels were given, but this network has no class embedding (num_class_embeds is null)");
  } else {
    FD_CHECK(!labels.empty(), ErrorCode::Argument, kKind, ": this network is class-conditional: class labels are required");
    FD_CHECK(int64_t(labels.size()) == B, ErrorCode::Argument, kKind, ": ", labels.size(), " class labels for a batch of ", B);
    for (size_t b = 0; b < labels.size(); ++b)
      FD_CHECK(labels[b] >= 0 && labels[b] < o_.num_classes, ErrorCode::Argument, kKind, ": class label ", labels[b],
               " at ", b, " is outside [0, ", o_.num_classes, ")");
  }
  const Units u = units();
  const Weights w(&params, "");

  // ---- time (and class) embedding ----
  TensorPtr t_emb = ctx.point("time_proj", [&] { return time_proj(t, nullptr); });
  TensorPtr emb = ctx.point("time_embedding", [&] { return timestep_mlp(w.sub("time_embedding"), t_emb); });
  if (o_.cls != ClassKind::None) {
    TensorPtr class_emb = ctx.point("class_embedding", [&] {
      if (o_.cls == ClassKind::Embedding) return ops::embedding(params.get("class_embedding.weight"), labels);
      std::vector<float> values(labels.begin(), labels.end());  // class_embed_type "timestep": time_proj(labels)
      TensorPtr lt = ops::to_device(ops::from_data(values.data(), {B}), t->device());
      return timestep_mlp(w.sub("class_embedding"), time_proj(lt, &labels));
    });
    emb = ops::add(emb, class_emb);
  }
  // Every ResNet applies SiLU to the embedding before its own projection: the same values, computed once.
  const TensorPtr temb = silu(emb);

  // DeepCache-style skip-branch reuse: when "up_blocks.k" is served from the cache (the largest such k),
  // up blocks 0..k, the mid block and whatever only feeds them are not computed. Up blocks k+1.. consume
  // the first (n−1−k)·(L+1) skip tensors — conv_in and the outputs of the shallow down blocks' units — so
  // the down path runs only until those exist (for k = 0 that stops before the downsampler of down block
  // n−2, DeepCache's "shallow branch"). Without such reuse every skip tensor is needed.
  int64_t deep = -1;
  for (int64_t i = 0; i < n; ++i)
    if (ctx.will_reuse(o_.up[i].name)) deep = i;
  const size_t per_up = size_t(o_.layers + 1);
  const size_t needed = deep < 0 ? per_up * size_t(n) : per_up * size_t(n - 1 - deep);

  // ---- input and down ----
  TensorPtr h = o_.center_input ? ops::unary(ops::Unary::Affine, input, 2.f, -1.f) : input;
  std::vector<TensorPtr> skips;
  if (needed > 0) {
    h = ctx.point("conv_in", [&] { return conv2d(w.sub("conv_in"), h, 1, 1); });
    skips.push_back(h);
  }
  // Each unit's output (and the downsampler's) is pushed as a skip tensor; stop as soon as enough exist.
  for (const auto& b : o_.down) {
    const bool partial = skips.size() + b.resnets.size() + (b.sampler != Sampler::None ? 1 : 0) > needed;
    for (size_t j = 0; j < b.resnets.size() && skips.size() < needed; ++j) {
      h = u.resnet(b.resnets[j], h, temb, ctx);
      if (j < b.attentions.size()) h = u.attention(b.attentions[j], h, ctx);
      skips.push_back(h);
    }
    if (partial) break;  // only part of this block (or none of it) feeds what runs
    if (b.sampler != Sampler::None) skips.push_back(h = u.sampler(b, h, temb, ctx, /*up=*/false));
    h = ctx.point(b.name, [&] { return h; });  // the block's hidden output (also its last skip tensor)
    skips.back() = h;
  }

  // ---- mid ----
  if (deep < 0 && o_.has_mid) {
    h = ctx.point("mid_block", [&] {
      TensorPtr m = u.resnet(o_.mid.resnets[0], h, temb, ctx);
      if (!o_.mid.attentions.empty()) m = u.attention(o_.mid.attentions[0], m, ctx);
      return u.resnet(o_.mid.resnets[1], m, temb, ctx);
    });
  }

  // ---- up ----
  for (int64_t i = 0; i < n; ++i) {
    const Block& b = o_.up[i];
    if (i < deep) continue;
    if (i == deep) {
      h = ctx.point(b.name, [&]() -> TensorPtr { fail(ErrorCode::Internal, kKind, ": ", b.name, " is reused"); });
      continue;
    }
    std::vector<TensorPtr> res(skips.end() - std::ptrdiff_t(per_up), skips.end());
    skips.resize(skips.size() - per_up);
    h = ctx.point(b.name, [&] {
      TensorPtr y = h;
      for (size_t j = 0; j < b.resnets.size(); ++j) {
        y = ops::concat({y, res[res.size() - 1 - j]}, 1);
        y = u.resnet(b.resnets[j], y, temb, ctx);
        if (j < b.attentions.size()) y = u.attention(b.attentions[j], y, ctx);
      }
      if (b.sampler != Sampler::None) y = u.sampler(b, y, temb, ctx, /*up=*/true);
      return y;
    });
  }

  // ---- output ----
  // GroupNorm and SiLU always run fused on the way to the output (so handing out, storing or reusing other points
  // never changes its bits); the normalized value alone is computed only when someone asks for "conv_norm_out".
  const Weights norm_out = w.sub("conv_norm_out");
  if (ctx.will_reuse("conv_norm_out")) {
    TensorPtr normed = ctx.point("conv_norm_out", [&]() -> TensorPtr { fail(ErrorCode::Internal, kKind, ": reused"); });
    h = ctx.point("conv_act", [&] { return silu(normed); });
  } else {
    if (ctx.observes("conv_norm_out")) ctx.point("conv_norm_out", [&] { return group_norm(norm_out, h, o_.groups, o_.eps); });
    h = ctx.point("conv_act", [&] { return group_norm(norm_out, h, o_.groups, o_.eps, /*silu=*/true); });
  }
  h = ctx.point("conv_out", [&] { return conv2d(w.sub("conv_out"), h, 1, 1); });
  // Fourier (σ-conditioned, score-SDE style) models: UNet2DModel divides the output by the timestep.
  if (o_.time == TimeKind::Fourier) h = ops::div(h, ops::reshape(t, {B, 1, 1, 1}));
  return h;
}

}  // namespace unet

std::unique_ptr<Network> make_unet(const ConfigReader& config) {
  return std::make_unique<unet::UNet2D>(unet::read_config(config));
}

}  // namespace fd::nn
