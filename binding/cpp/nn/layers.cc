// Shared layers (see layers.h). Shapes are checked by the ops themselves, whose errors
// name the op and both shapes.
#include "nn/layers.h"

#include <cmath>

#include "ops/ops.h"

namespace fd::nn {

TensorPtr linear(const Weights& w, const TensorPtr& x) { return ops::linear(x, w("weight"), w.maybe("bias")); }
TensorPtr linear(const Weights& w, const TensorPtr& x, const ops::LinearFinish& finish) {
  return ops::linear(x, w("weight"), w.maybe("bias"), finish);
}

TensorPtr conv2d(const Weights& w, const TensorPtr& x, int64_t stride, int64_t padding) {
  return ops::conv2d(x, w("weight"), w.maybe("bias"), stride, stride, padding, padding, 1, 1, 1);
}

TensorPtr group_norm(const Weights& w, const TensorPtr& x, int64_t groups, float eps, bool silu) {
  return ops::group_norm(x, groups, w("weight"), w("bias"), eps, silu);
}

TensorPtr layer_norm(const Weights& w, const TensorPtr& x, float eps, bool affine) {
  if (!affine) return ops::layer_norm(x, nullptr, nullptr, eps);
  return ops::layer_norm(x, w("weight"), w("bias"), eps);
}

TensorPtr silu(const TensorPtr& x) { return ops::unary(ops::Unary::Silu, x); }

TensorPtr timestep_mlp(const Weights& w, const TensorPtr& t_emb) {
  return linear(w.sub("linear_2"), silu(linear(w.sub("linear_1"), t_emb)));
}

void timestep_mlp_specs(const SpecList& s, int64_t in, int64_t out) {
  s.linear("linear_1", in, out);
  s.linear("linear_2", out, out);
}

// The projections' token rows [B, N, heads·d] are read as [B, N, heads, d] (tokens-major attention): no permutes.
TensorPtr self_attention_heads(const Weights& w, const TensorPtr& tokens, int64_t heads, int64_t head_dim) {
  FD_CHECK(tokens->dim() == 3, ErrorCode::Shape, "attention: expected tokens [B, N, C], got ", shape_str(tokens->shape));
  const int64_t B = tokens->shape[0], N = tokens->shape[1];
  auto project = [&](const char* name) { return ops::reshape(linear(w.sub(name), tokens), {B, N, heads, head_dim}); };
  TensorPtr q = project("to_q"), k = project("to_k"), v = project("to_v");
  TensorPtr o = ops::attention(q, k, v, 1.f / std::sqrt(float(head_dim)), /*tokens_major=*/true);
  return ops::reshape(o, {B, N, heads * head_dim});
}

TensorPtr self_attention(const Weights& w, const TensorPtr& tokens, int64_t heads, int64_t head_dim) {
  return linear(w.sub("to_out").sub(0), self_attention_heads(w, tokens, heads, head_dim));
}

void self_attention_specs(const SpecList& s, int64_t channels, int64_t heads, int64_t head_dim, bool bias,
                          bool out_bias) {
  const int64_t inner = heads * head_dim;
  s.linear("to_q", channels, inner, bias);
  s.linear("to_k", channels, inner, bias);
  s.linear("to_v", channels, inner, bias);
  s.sub("to_out").linear("0", inner, channels, out_bias);
}

TensorPtr image_to_tokens(const TensorPtr& x) {
  FD_CHECK(x->dim() == 4, ErrorCode::Shape, "image_to_tokens: expected [B, C, H, W], got ", shape_str(x->shape));
  const int64_t B = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
  return ops::permute(ops::reshape(x, {B, C, HW}), {0, 2, 1});
}

TensorPtr tokens_to_image(const TensorPtr& tokens, int64_t height, int64_t width) {
  const int64_t B = tokens->shape[0], C = tokens->shape[2];
  return ops::reshape(ops::permute(tokens, {0, 2, 1}), {B, C, height, width});
}

}  // namespace fd::nn
