// The per-element math of kernels::Unary / kernels::Binary on the GPU, and host helpers
// that turn a runtime op into a compile-time one (one kernel instantiation per op, so
// no switch runs per element). Formulas follow kernels/reference/vector_ref.cc; they are
// evaluated in float32 with CUDA's full-precision functions (a few ulp from the
// reference's double evaluation), never with fast-math intrinsics.
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/vector.h"

namespace fd::cuda {

using kernels::Binary;
using kernels::Unary;

namespace math {
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluC = 0.044715f;
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
}  // namespace math

// y = f(x; a, b)
template <Unary OP>
__device__ __forceinline__ float unary_fwd(float x, float a, float b) {
  using namespace math;
  if constexpr (OP == Unary::Neg) return -x;
  else if constexpr (OP == Unary::Exp) return expf(x);
  else if constexpr (OP == Unary::Log) return logf(x);
  else if constexpr (OP == Unary::Sqrt) return sqrtf(x);
  else if constexpr (OP == Unary::Rsqrt) return 1.f / sqrtf(x);  // rsqrtf is only approximate
  else if constexpr (OP == Unary::Abs) return fabsf(x);
  else if constexpr (OP == Unary::Square) return x * x;
  else if constexpr (OP == Unary::Sign) return x > 0.f ? 1.f : (x < 0.f ? -1.f : x);  // keeps ±0 and NaN
  else if constexpr (OP == Unary::Sigmoid) return sigmoid(x);
  else if constexpr (OP == Unary::Softplus) return x > 20.f ? x : log1pf(expf(x));
  else if constexpr (OP == Unary::Tanh) return tanhf(x);
  else if constexpr (OP == Unary::Silu) return x * sigmoid(x);
  else if constexpr (OP == Unary::GeluTanh) {
    // 0.5x(1 + tanh(u)) == x·sigmoid(2u), u = √(2/π)(x + 0.044715x³): no cancellation for x ≪ 0
    const float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
    return x * sigmoid(2.f * u);
  } else if constexpr (OP == Unary::GeluErf) return 0.5f * x * erfcf(-x * kInvSqrt2);
  else if constexpr (OP == Unary::Relu) return x <= 0.f ? 0.f : x;
  else if constexpr (OP == Unary::Affine) return a * x + b;
  else if constexpr (OP == Unary::PowScalar) return powf(x, a);
  else if constexpr (OP == Unary::Clamp) {
    const float r = x < a ? a : x;
    return r > b ? b : r;
  } else if constexpr (OP == Unary::IsNan) return isnan(x) ? 1.f : 0.f;
  else if constexpr (OP == Unary::NanToNum) {
    if (isnan(x)) return a;
    if (isinf(x)) return x > 0.f ? b : -b;
    return x;
  } else return x;
}

// gx = g · dy/dx at x (y = f(x) where the derivative is cheaper from y).
template <Unary OP>
__device__ __forceinline__ float unary_bwd(float x, float y, float g, float a, float b) {
  using namespace math;
  if constexpr (OP == Unary::Neg) return -g;
  else if constexpr (OP == Unary::Exp) return g * y;
  else if constexpr (OP == Unary::Log) return g / x;
  else if constexpr (OP == Unary::Sqrt) return g / (y + y);
  else if constexpr (OP == Unary::Rsqrt) return -0.5f * g * y * y * y;
  else if constexpr (OP == Unary::Abs) return g * (x > 0.f ? 1.f : (x < 0.f ? -1.f : (x == 0.f ? 0.f : x)));
  else if constexpr (OP == Unary::Square) return g * (x + x);
  else if constexpr (OP == Unary::Sign) return 0.f;
  else if constexpr (OP == Unary::Sigmoid) return g * y * (1.f - y);
  else if constexpr (OP == Unary::Softplus) return x > 20.f ? g : g * sigmoid(x);
  else if constexpr (OP == Unary::Tanh) return g * (1.f - y * y);
  else if constexpr (OP == Unary::Silu) {
    const float s = sigmoid(x);  // d/dx x·s(x) = s(1 + x(1 − s))
    return g * (s * (1.f + x * (1.f - s)));
  } else if constexpr (OP == Unary::GeluTanh) {
    // 0.5(1 + t) + 0.5x(1 − t²)u' with t = tanh(u) = 2s − 1, s = sigmoid(2u); 1 − s computed as sigmoid(−2u)
    const float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
    const float s = sigmoid(2.f * u), oms = sigmoid(-2.f * u);
    const float du = kSqrt2OverPi * (1.f + 3.f * kGeluC * x * x);
    return g * (s + 2.f * x * s * oms * du);
  } else if constexpr (OP == Unary::GeluErf) {
    // d/dx xΦ(x) = Φ(x) + xφ(x)
    const float cdf = 0.5f * erfcf(-x * kInvSqrt2);
    const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
    return g * (cdf + x * pdf);
  } else if constexpr (OP == Unary::Relu) return x <= 0.f ? 0.f : g;
  else if constexpr (OP == Unary::Affine) return a * g;
  else if constexpr (OP == Unary::PowScalar) return a == 0.f ? 0.f : g * a * powf(x, a - 1.f);
  else if constexpr (OP == Unary::Clamp) return (x >= a && x <= b) ? g : 0.f;
  else if constexpr (OP == Unary::IsNan) return 0.f;
  else if constexpr (OP == Unary::NanToNum) return isfinite(x) ? g : 0.f;
  else return 0.f;
}

// Which saved tensors unary_bwd<OP> reads (the others are not streamed from memory).
template <Unary OP>
constexpr bool backward_reads_y() {
  return OP == Unary::Exp || OP == Unary::Sqrt || OP == Unary::Rsqrt || OP == Unary::Sigmoid || OP == Unary::Tanh;
}
template <Unary OP>
constexpr bool backward_reads_x() {
  return !backward_reads_y<OP>() && OP != Unary::Neg && OP != Unary::Sign && OP != Unary::Affine && OP != Unary::IsNan;
}

template <Binary OP>
__device__ __forceinline__ float binary_fwd(float x, float y) {
  const float kQuietNan = __int_as_float(0x7fc00000);
  if constexpr (OP == Binary::Add) return x + y;
  else if constexpr (OP == Binary::Sub) return x - y;
  else if constexpr (OP == Binary::Mul) return x * y;
  else if constexpr (OP == Binary::Div) return x / y;
  else if constexpr (OP == Binary::Pow) return powf(x, y);
  else if constexpr (OP == Binary::Maximum) return (isnan(x) || isnan(y)) ? kQuietNan : (x > y ? x : y);
  else if constexpr (OP == Binary::Minimum) return (isnan(x) || isnan(y)) ? kQuietNan : (x < y ? x : y);
  else return 0.f;
}

// with_unary(op, f) calls f(std::integral_constant<Unary, op>{}) (host side).
template <class F>
void with_unary(Unary op, F&& f) {
  using U = Unary;
  switch (op) {
#define FD_UNARY_CASE(name) \
  case U::name: return f(std::integral_constant<U, U::name>{});
    FD_UNARY_CASE(Neg) FD_UNARY_CASE(Exp) FD_UNARY_CASE(Log) FD_UNARY_CASE(Sqrt) FD_UNARY_CASE(Rsqrt)
    FD_UNARY_CASE(Abs) FD_UNARY_CASE(Square) FD_UNARY_CASE(Sign) FD_UNARY_CASE(Sigmoid) FD_UNARY_CASE(Softplus)
    FD_UNARY_CASE(Tanh) FD_UNARY_CASE(Silu) FD_UNARY_CASE(GeluTanh) FD_UNARY_CASE(GeluErf) FD_UNARY_CASE(Relu)
    FD_UNARY_CASE(Affine) FD_UNARY_CASE(PowScalar) FD_UNARY_CASE(Clamp) FD_UNARY_CASE(IsNan) FD_UNARY_CASE(NanToNum)
#undef FD_UNARY_CASE
    default: return;  // Count: the ops validate names before they get here
  }
}

template <class F>
void with_binary(Binary op, F&& f) {
  using B = Binary;
  switch (op) {
    case B::Add: return f(std::integral_constant<B, B::Add>{});
    case B::Sub: return f(std::integral_constant<B, B::Sub>{});
    case B::Mul: return f(std::integral_constant<B, B::Mul>{});
    case B::Div: return f(std::integral_constant<B, B::Div>{});
    case B::Pow: return f(std::integral_constant<B, B::Pow>{});
    case B::Maximum: return f(std::integral_constant<B, B::Maximum>{});
    case B::Minimum: return f(std::integral_constant<B, B::Minimum>{});
    default: return;
  }
}

// Functors for the map kernels (map.cuh): v holds one value per operand.
template <Unary OP>
struct UnaryFwd {
  float a, b;
  __device__ float operator()(const float* v) const { return unary_fwd<OP>(v[0], a, b); }
};
template <Unary OP>
struct UnaryBwd {  // operands: x, y, gy
  float a, b;
  __device__ float operator()(const float* v) const { return unary_bwd<OP>(v[0], v[1], v[2], a, b); }
};
template <Binary OP>
struct BinaryFwd {
  __device__ float operator()(const float* v) const { return binary_fwd<OP>(v[0], v[1]); }
};

}  // namespace fd::cuda
