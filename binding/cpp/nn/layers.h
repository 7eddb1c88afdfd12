// Layers shared by the networks, named like the diffusers modules whose weights they read.
#pragma once
#include "nn/network.h"
#include "ops/ops.h"

namespace fd::nn {

// nn.Linear: x·Wᵀ + b over the last axis (bias optional); then `finish` (activation, gated residual: ops::linear's
// fused ones).
TensorPtr linear(const Weights& w, const TensorPtr& x);
TensorPtr linear(const Weights& w, const TensorPtr& x, const ops::LinearFinish& finish);
// nn.Conv2d with square kernel, stride and padding.
TensorPtr conv2d(const Weights& w, const TensorPtr& x, int64_t stride, int64_t padding);
// nn.GroupNorm (optionally fused with the SiLU that follows it).
TensorPtr group_norm(const Weights& w, const TensorPtr& x, int64_t groups, float eps, bool silu = false);
// nn.LayerNorm over the last axis; `affine` false: no weight/bias (DiT's norms).
TensorPtr layer_norm(const Weights& w, const TensorPtr& x, float eps, bool affine);
TensorPtr silu(const TensorPtr& x);

// diffusers TimestepEmbedding: linear_1 → SiLU → linear_2.
TensorPtr timestep_mlp(const Weights& w, const TensorPtr& t_emb);
void timestep_mlp_specs(const SpecList& s, int64_t in, int64_t out);

// diffusers Attention (self-attention) on tokens [B, N, C]: to_q/to_k/to_v, heads of size
// head_dim, scaled dot-product attention, to_out.0. Returns [B, N, C_out].
TensorPtr self_attention(const Weights& w, const TensorPtr& tokens, int64_t heads, int64_t head_dim);
// The same before to_out.0: the heads' outputs [B, N, heads·head_dim].
TensorPtr self_attention_heads(const Weights& w, const TensorPtr& tokens, int64_t heads, int64_t head_dim);
void self_attention_specs(const SpecList& s, int64_t channels, int64_t heads, int64_t head_dim, bool bias = true,
                          bool out_bias = true);

// [B, C, H, W] ↔ [B, H·W, C] (copies).
TensorPtr image_to_tokens(const TensorPtr& x);
TensorPtr tokens_to_image(const TensorPtr& tokens, int64_t height, int64_t width);

}  // namespace fd::nn
