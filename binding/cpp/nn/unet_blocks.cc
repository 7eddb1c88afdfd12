// The UNet2DModel units (see unet.h): ResnetBlock2D, Attention, Downsample2D / Upsample2D, and
// GaussianFourierProjection — diffusers' math, diffusers' parameter names.
#include <cmath>

#include "nn/layers.h"
#include "nn/unet.h"
#include "ops/ops.h"

namespace fd::nn::unet {

static TensorPtr resample(const TensorPtr& x, Resample r) {
  switch (r) {
    case Resample::None: return x;
    case Resample::Down: return ops::avg_pool2d(x, 2, 2, 2, 2);  // Downsample2D(use_conv=False)
    case Resample::Up: return ops::upsample_nearest2d(x, 2, 2);  // Upsample2D(use_conv=False)
  }
  return x;
}

// x ÷ s as diffusers computes it (a true division; skipped for s = 1, where it is exact anyway).
static TensorPtr divide(const TensorPtr& x, float s) { return s == 1.f ? x : ops::div(x, ops::full({1}, s, x->device())); }

TensorPtr Units::resnet(const ResnetUnit& r, const TensorPtr& x, const TensorPtr& temb, ForwardContext& ctx) const {
  return ctx.point(r.name, [&] {
    const Weights w(&params, r.name);
    TensorPtr h = ctx.point(r.name + ".conv1", [&] {
      TensorPtr a = group_norm(w.sub("norm1"), x, o.groups, o.eps, /*silu=*/true);
      return conv2d(w.sub("conv1"), resample(a, r.resample), 1, 1);
    });
    // Recomputed at the current t even when conv1 is reused (FRDiff): time projection, norm2, conv2, shortcut.
    const int64_t B = x->shape[0];
    TensorPtr proj = linear(w.sub("time_emb_proj"), temb);
    if (!o.scale_shift) {
      h = ops::add(h, ops::reshape(proj, {B, r.out, 1, 1}));
      h = group_norm(w.sub("norm2"), h, o.groups, o.eps, /*silu=*/true);
    } else {  // norm2(h)·(1 + scale) + shift, then SiLU
      auto parts = ops::split(proj, {r.out, r.out}, 1);
      TensorPtr scale = ops::reshape(ops::unary(ops::Unary::Affine, parts[0], 1.f, 1.f), {B, r.out, 1, 1});
      h = group_norm(w.sub("norm2"), h, o.groups, o.eps, /*silu=*/false);
      h = silu(ops::add(ops::mul(h, scale), ops::reshape(parts[1], {B, r.out, 1, 1})));
    }
    h = ctx.dropout(h, o.dropout);
    h = conv2d(w.sub("conv2"), h, 1, 1);
    TensorPtr shortcut = resample(x, r.resample);
    if (r.in != r.out) shortcut = conv2d(w.sub("conv_shortcut"), shortcut, 1, 0);
    return divide(ops::add(shortcut, h), r.scale);
  });
}

TensorPtr Units::attention(const AttnUnit& a, const TensorPtr& x, ForwardContext& ctx) const {
  return ctx.point(a.name, [&] {
    const Weights w(&params, a.name);
    TensorPtr branch = ctx.point(a.name + ".to_out", [&] {
      // AttnProcessor2_0 on a 4-D input: group_norm over channels, tokens [B, H·W, C], SDPA with
      // scale 1/√head_dim, to_out.0, back to [B, C, H, W].
      TensorPtr h = a.groups ? group_norm(w.sub("group_norm"), x, a.groups, o.eps) : x;
      TensorPtr tokens = self_attention(w, image_to_tokens(h), a.heads, a.head_dim);
      return tokens_to_image(tokens, x->shape[2], x->shape[3]);
    });
    return divide(ops::add(branch, x), a.rescale);
  });
}

TensorPtr Units::sampler(const Block& b, const TensorPtr& x, const TensorPtr& temb, ForwardContext& ctx, bool up) const {
  if (b.sampler == Sampler::Resnet) return resnet(b.sampler_resnet, x, temb, ctx);
  const std::string& name = b.sampler_resnet.name;
  return ctx.point(name, [&] {
    const Weights w(&params, name + ".conv");
    if (up) return conv2d(w, ops::upsample_nearest2d(x, 2, 2), 1, 1);  // Upsample2D(use_conv=True)
    // Downsample2D(use_conv=True, padding): 3×3 stride 2; padding 0 pads right/bottom by one first.
    if (o.downsample_padding == 1) return conv2d(w, x, 2, 1);
    return conv2d(w, ops::pad(x, {0, 1, 0, 1}, 0.f), 2, 0);
  });
}

}  // namespace fd::nn::unet
