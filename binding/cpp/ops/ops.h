// The op set. Every op validates shapes (throwing fd::Error naming the op and the
// shapes), allocates its output, enqueues its kernel on the current stream and,
// when an input needs a gradient, records its Node (defined beside the forward in
// the same ops/<family>.cc file).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/tensor.h"
#include "kernels/vector.h"

namespace fd::ops {

using kernels::Binary;
using kernels::Unary;

// ---- creation (creation.cc) ----
TensorPtr from_data(const float* data, const Shape& shape);
TensorPtr full(const Shape& shape, float value, Device device = {});
TensorPtr arange(double start, double end, double step, Device device = {});
// Philox (seed, offset) draws: the same values on every device (core/rng.h).
TensorPtr rand(const Shape& shape, uint64_t seed, uint64_t offset, float low, float high, Device device = {});
TensorPtr randn(const Shape& shape, uint64_t seed, uint64_t offset, float mean, float stddev, Device device = {});
TensorPtr contiguous_copy(const TensorPtr& t);  // a new storage with the same values (recorded: clone)
// x on `device` (x itself when already there); recorded: the gradient moves back to x's device.
TensorPtr to_device(const TensorPtr& x, Device device);

// ---- elementwise (elementwise.cc) ----
TensorPtr unary(Unary op, const TensorPtr& x, float a = 0.f, float b = 0.f);
TensorPtr binary(Binary op, const TensorPtr& a, const TensorPtr& b);
TensorPtr add(const TensorPtr& a, const TensorPtr& b);
TensorPtr sub(const TensorPtr& a, const TensorPtr& b);
TensorPtr mul(const TensorPtr& a, const TensorPtr& b);
TensorPtr div(const TensorPtr& a, const TensorPtr& b);
TensorPtr scale(const TensorPtr& x, float s);  // s·x
TensorPtr where(const TensorPtr& cond, const TensorPtr& a, const TensorPtr& b);  // cond ≠ 0 ? a : b
// x·y + z, the three broadcast together, in one pass and one rounding (a gated residual h + gate·branch).
TensorPtr mul_add(const TensorPtr& x, const TensorPtr& y, const TensorPtr& z);
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// Sums g over the broadcast dimensions so it has `shape` (the backward of broadcasting).
TensorPtr sum_to(const TensorPtr& g, const Shape& shape);
TensorPtr expand(const TensorPtr& x, const Shape& shape);  // broadcastTo (copies)

// ---- reductions (reduce.cc) ----
enum class Reduce { Sum, Mean, Max, Min };
TensorPtr reduce(Reduce kind, const TensorPtr& x, std::vector<int64_t> axes, bool keepdim);
TensorPtr var(const TensorPtr& x, std::vector<int64_t> axes, bool keepdim, int64_t correction);
TensorPtr norm(const TensorPtr& x);  // global L2 norm, a scalar

// ---- shape (shape.cc) ----
TensorPtr reshape(const TensorPtr& x, Shape shape);  // free: shares storage; one -1 allowed
TensorPtr permute(const TensorPtr& x, const std::vector<int64_t>& perm);
TensorPtr transpose(const TensorPtr& x, int64_t a, int64_t b);
TensorPtr concat(const std::vector<TensorPtr>& xs, int64_t axis);
TensorPtr slice(const TensorPtr& x, int64_t axis, int64_t start, int64_t end);
std::vector<TensorPtr> split(const TensorPtr& x, const std::vector<int64_t>& sizes, int64_t axis);
TensorPtr pad(const TensorPtr& x, const std::vector<int64_t>& pads, float value);  // pads: (before, after) per dim from the last

// ---- linear algebra (matmul.cc) ----
TensorPtr matmul(const TensorPtr& a, const TensorPtr& b);
TensorPtr linear(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias);  // x·wᵀ + b; bias may be null
// What a linear does to its output x·wᵀ + b before returning it: a parameterless `activation` (relu, silu, sigmoid,
// tanh, gelu_tanh, gelu_erf), then a `residual` of the output's shape added — scaled first by `gate` [G, out] if
// given, in G groups of consecutive rows (one per sample: adaLN-Zero's h + gate·branch). The values of the separate
// ops (unary, add, mul_add); with nothing to record for autograd, each row block of the output gets them as soon as
// the GEMM has stored it, while it is in cache (one pass over the output instead of up to three).
struct LinearFinish {
  std::optional<Unary> activation;
  TensorPtr gate, residual;
};
TensorPtr linear(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias, const LinearFinish& finish);

// ---- convolution and pooling (conv.cc, resize.cc) ----
TensorPtr conv2d(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias, int64_t stride_h, int64_t stride_w,
                 int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups);
TensorPtr upsample_nearest2d(const TensorPtr& x, int64_t scale_h, int64_t scale_w);
TensorPtr avg_pool2d(const TensorPtr& x, int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w);
enum class ResizeMode { Bilinear, Bicubic };
TensorPtr resize(const TensorPtr& x, int64_t out_h, int64_t out_w, ResizeMode mode);

// ---- normalization, activations, attention (norm.cc, attention.cc) ----
TensorPtr group_norm(const TensorPtr& x, int64_t groups, const TensorPtr& gamma, const TensorPtr& beta, float eps,
                     bool silu);
// Over the last axis; gamma/beta (each may be null) are [D], or [B, D] per sample of x [B, ..., D]
// (an adaptive norm's modulation applied in the same pass).
TensorPtr layer_norm(const TensorPtr& x, const TensorPtr& gamma, const TensorPtr& beta, float eps);
TensorPtr softmax(const TensorPtr& x, int64_t axis, bool log);
// softmax(q·kᵀ·scale)·v per head; q, k, v and the result are [B, H, N, D], or [B, N, H, D] when
// tokens_major (a projection's [B, N, H·D] output reshaped: no permutes).
TensorPtr attention(const TensorPtr& q, const TensorPtr& k, const TensorPtr& v, float scale, bool tokens_major = false);

// ---- embeddings, dropout, losses (embed.cc) ----
TensorPtr timestep_embedding(const TensorPtr& t, int64_t dim, bool flip_sin_to_cos, float downscale_freq_shift,
                             float scale, float max_period);
TensorPtr embedding(const TensorPtr& weight, const std::vector<int32_t>& labels);
// GaussianFourierProjection: x [B] (already log σ), W [C] → [B, 2C] = [sin, cos](2π·x·W), in float32 in
// diffusers' order of operations; differentiable in x.
TensorPtr gaussian_fourier_projection(const TensorPtr& x, const TensorPtr& w);
TensorPtr dropout(const TensorPtr& x, float p, uint64_t seed, uint64_t offset);
enum class LossReduction { Mean, Sum, None };
TensorPtr mse_loss(const TensorPtr& a, const TensorPtr& b, LossReduction reduction);

// ---- distillation losses (distill.cc) ----
// SiD's generator loss (METHODS.md §1(b)), fused: {per-sample loss [B], mask [B]} with
// L_b = w_b·Σ[(1 − α)(r − f)² + (r − f)(f − x_g)], w_b = 1/max(mean|x_g − r|, 1e-5) detached; samples with a
// non-finite value get L_b = 0, no gradient and mask_b = 0. Differentiable in r, f and x_g.
std::vector<TensorPtr> sid_loss(const TensorPtr& r, const TensorPtr& f, const TensorPtr& xg, float alpha);

// ---- stream-side checks (checks.cc): failures surface at the next sync ----
void check_finite(const TensorPtr& x, const std::string& what);

// ---- optimizers (optim.cc): fused, in place, not recorded ----
struct OptimGroup {
  std::vector<TensorPtr> params;
  std::vector<TensorPtr> state1;  // Adam m / SGD momentum buffer
  std::vector<TensorPtr> state2;  // Adam v
};
struct StepOptions {
  float max_grad_norm = 0.f;  // > 0: clip by global norm
  bool sanitize = false;       // replace NaN/Inf gradients by 0 first
  TensorPtr stats;             // optional [3] output: grad norm before clipping, clip scale, non-finite count
};
void adam_step(OptimGroup& group, const kernels::AdamParams& hyper, const StepOptions& options);
void sgd_step(OptimGroup& group, float lr, float momentum, float weight_decay, bool nesterov,
              const StepOptions& options);
void ema_update(const std::vector<TensorPtr>& ema, const std::vector<TensorPtr>& params, float decay);
void copy_(const TensorPtr& dst, const TensorPtr& src);  // dst ← src values (in place, not recorded)

}  // namespace fd::ops
