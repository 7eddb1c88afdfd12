// UNet2DModel internals shared by unet.cc (config, network, forward) and unet_blocks.cc (the
// ResnetBlock2D / Attention / Down-/Upsample2D units). Not part of the engine's interface.
#pragma once
#include <string>
#include <vector>

#include "nn/network.h"

namespace fd::nn::unet {

constexpr const char* kKind = "UNet2DModel";

enum class TimeKind { Positional, Fourier, Learned };
enum class ClassKind { None, Embedding, Timestep };
enum class Resample { None, Down, Up };  // ResnetBlock2D(down=True / up=True): avg-pool 2×2 / nearest ×2
enum class Sampler { None, Conv, Resnet };

// One ResnetBlock2D: norm1 → SiLU → [resample] → conv1 (+ time_emb_proj(SiLU(emb))) → norm2 → SiLU →
// dropout → conv2, plus the (resampled, 1×1-conv'd when in ≠ out) input; the sum ÷ scale.
struct ResnetUnit {
  std::string name;
  int64_t in = 0, out = 0;
  Resample resample = Resample::None;
  float scale = 1.f;  // output_scale_factor
};

// One diffusers Attention (_from_deprecated_attn_block): [group_norm] → to_q/k/v → SDPA → to_out.0,
// plus the input (residual_connection), ÷ rescale_output_factor.
struct AttnUnit {
  std::string name;
  int64_t channels = 0, heads = 0, head_dim = 0;
  int64_t groups = 0;  // 0: no group_norm
  float rescale = 1.f;
};

struct Block {
  std::string name;  // "down_blocks.1", "mid_block", "up_blocks.0"
  int64_t channels = 0;
  std::vector<ResnetUnit> resnets;
  std::vector<AttnUnit> attentions;  // empty, or one after each resnet (mid: after resnets[0])
  Sampler sampler = Sampler::None;
  ResnetUnit sampler_resnet;  // its name is the sampler's ("….downsamplers.0"); used as a unit for Sampler::Resnet
};

// The config, resolved into blocks (every diffusers default already filled in by lib/models/unet.ts).
struct Config {
  int64_t in_channels = 0, out_channels = 0;
  bool center_input = false;
  TimeKind time = TimeKind::Positional;
  bool flip_sin_to_cos = true;
  float freq_shift = 0.f;
  int64_t time_input_dim = 0, temb = 0, num_train_timesteps = 0;
  std::vector<int64_t> channels;
  int64_t layers = 0, groups = 0, downsample_padding = 1;
  float eps = 1e-5f, dropout = 0.f, mid_scale = 1.f;
  bool scale_shift = false;
  ClassKind cls = ClassKind::None;
  int64_t num_classes = 0;  // rows of the class table
  int64_t null_class = -1;  // the unconditional row (fastdiff's `null_class`), or -1
  bool has_mid = false;
  std::vector<Block> down, up;
  Block mid;
};

Config read_config(const ConfigReader& config);

// The units' forwards; every unit output and cache point goes through ctx.point.
struct Units {
  const Config& o;
  const ParamSet& params;
  // Points "<name>.conv1" (FRDiff: after GN1, SiLU, resampling and conv1) and "<name>".
  TensorPtr resnet(const ResnetUnit& r, const TensorPtr& x, const TensorPtr& temb, ForwardContext& ctx) const;
  // Points "<name>.to_out" (the residual branch, [B, C, H, W]) and "<name>".
  TensorPtr attention(const AttnUnit& a, const TensorPtr& x, ForwardContext& ctx) const;
  // The block's Downsample2D / Upsample2D (or resampling ResnetBlock2D): point "<block>.{down,up}samplers.0".
  TensorPtr sampler(const Block& b, const TensorPtr& x, const TensorPtr& temb, ForwardContext& ctx, bool up) const;
};


}  // namespace fd::nn::unet
