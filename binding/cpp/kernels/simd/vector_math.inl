// Vector math shared by the SIMD kernels: exp, log, tanh, sigmoid, GELU, ... and with_unary, which maps a Unary
// op to its vector function. Written against the ISA layer that simd/vector_kernels.inl describes, and textually
// included by it (so by avx2/vector_avx2.cc and avx512/vector_avx512.cc) and by avx512/gemm_avx512.cc, whose
// micro-kernel applies a linear's activation in registers with these very functions (the same bits as the
// vector kernels give). Everything keeps internal linkage (see vector_kernels.inl).

constexpr float kInf = __builtin_inff();
constexpr float kNaN = __builtin_nanf("");

inline double dsqrt(double a) { return _mm_cvtsd_f64(_mm_sqrt_sd(_mm_setzero_pd(), _mm_set_sd(a))); }

// ---------------------------------------------------------------- math
// exp: Cody-Waite reduction x = n·ln2 + r, degree-6 polynomial on |r| <= ln2/2,
// 2^n applied in two halves so that denormal results and exact overflow work.
// vexp_finite is that core for |x| <= 87 (finite, normal results); vexp clamps x first.
inline V vexp_finite(V x) {
  const V fx = vround(vmul(x, vset(1.44269504088896341f)));
  V r = vfnma(fx, vset(0.693359375f), x);
  r = vfnma(fx, vset(-2.12194440e-4f), r);
  // 1 + r + r²·q(r), q a degree-4 fit of (e^r - 1 - r)/r² (relative error 4e-9 before rounding)
  V p = vset(1.3751594815403223e-3f);
  p = vfma(p, r, vset(8.368922397494316e-3f));
  p = vfma(p, r, vset(4.166952893137932e-2f));
  p = vfma(p, r, vset(1.66665181517601e-1f));
  p = vfma(p, r, vset(4.9999988079071045e-1f));
  p = vfma(p, r, vset(1.f));
  const V y = vfma(p, r, vset(1.f));
  return vldexp(y, fx);
}
inline V vexp(V x) {
  x = vminr(vset(88.8f), x);  // NaN passes through (second operand)
  x = vmaxr(vset(-104.f), x);
  return vexp_finite(x);
}

// 1/d for d >= 1 (possibly +inf, then 0; NaN propagates): hardware reciprocal
// estimate + one Newton step (~1 ulp), much cheaper than a division.
inline V vrecip1(V d) {
  const V dc = vminr(vset(3.4028234e38f), d);
  V r = vrcp(dc);
  r = vfma(r, vfnma(dc, r, vset(1.f)), r);
  return sel(eq(d, vset(kInf)), vzero(), r);
}

// log: x = m·2^e with m in [sqrt(1/2), sqrt(2)), polynomial in m-1; denormals are
// rescaled first; log(0) = -inf, log(<0) = NaN, log(inf) = inf, NaN propagates.
inline V vlog(V x0) {
  const M den = lt(x0, vset(1.17549435e-38f));
  const V x = sel(den, vmul(x0, vset(8388608.f)), x0);
  const VI bits = asi(x);
  V e = vcvtf(isub(isrl23(bits), iset(126)));
  e = sel(den, vsub(e, vset(23.f)), e);
  V m = asf(ior(iand(bits, iset(0x007fffff)), iset(0x3f000000)));
  const M small = lt(m, vset(0.707106781186547524f));
  e = sel(small, vsub(e, vset(1.f)), e);
  m = vsub(sel(small, vadd(m, m), m), vset(1.f));
  const V z = vmul(m, m);
  V p = vset(7.0376836292E-2f);
  p = vfma(p, m, vset(-1.1514610310E-1f));
  p = vfma(p, m, vset(1.1676998740E-1f));
  p = vfma(p, m, vset(-1.2420140846E-1f));
  p = vfma(p, m, vset(1.4249322787E-1f));
  p = vfma(p, m, vset(-1.6668057665E-1f));
  p = vfma(p, m, vset(2.0000714765E-1f));
  p = vfma(p, m, vset(-2.4999993993E-1f));
  p = vfma(p, m, vset(3.3333331174E-1f));
  V y = vmul(vmul(p, m), z);
  y = vfma(e, vset(-2.12194440e-4f), y);
  y = vfma(z, vset(-0.5f), y);
  V r = vadd(m, y);
  r = vfma(e, vset(0.693359375f), r);
  r = sel(eq(x0, vset(kInf)), x0, r);
  r = sel(lt(x0, vzero()), vset(kNaN), r);
  r = sel(eq(x0, vzero()), vset(-kInf), r);
  return sel(isnan(x0), x0, r);
}

// tanh: odd polynomial for |x| < 0.625, else 1 - 2/(exp(2|x|)+1) with the sign of x.
inline V vtanh(V x) {
  const V ax = vabs(x);
  const V z = vmul(x, x);
  V p = vset(-5.70498872745E-3f);
  p = vfma(p, z, vset(2.06390887954E-2f));
  p = vfma(p, z, vset(-5.37397155531E-2f));
  p = vfma(p, z, vset(1.33314422036E-1f));
  p = vfma(p, z, vset(-3.33332819422E-1f));
  const V small = vfma(vmul(p, z), x, x);
  const V e = vexp(vadd(ax, ax));
  V big = vfnma(vset(2.f), vrecip1(vadd(e, vset(1.f))), vset(1.f));
  big = vor(big, vand(x, vset(-0.f)));
  return sel(lt(ax, vset(0.625f)), small, big);
}

// e = exp(-x); s = 1/(1+e); 1-s = e·s (no cancellation), or 1 - s where e > 1.
inline V vsigmoid(V x) { return vrecip1(vadd(vset(1.f), vexp(vneg(x)))); }
inline V one_minus_sigmoid(V e, V s) { return sel(gt(e, vset(1.f)), vsub(vset(1.f), s), vmul(e, s)); }

// Sigmoid pieces for finite normalized values (norm kernels): exp(-t) is capped at
// e^87 so 1+e stays finite and the reciprocal needs no +inf guard.
inline V vexp_neg_capped(V t) { return vexp(vminr(vset(87.f), vneg(t))); }
inline V vrecip1_finite(V d) {
  const V r = vrcp(d);
  return vfma(r, vfnma(d, r, vset(1.f)), r);
}

// log1p(t) for t >= 0 (Goldberg: log(1+t)·t/((1+t)-1)).
inline V vlog1p_pos(V t) {
  const V u = vadd(vset(1.f), t);
  const V d = vsub(u, vset(1.f));
  const V r = vmul(vlog(u), vdiv(t, d));
  return sel(eq(d, vzero()), t, r);
}

inline V vsoftplus(V x) {
  const V t = vexp(vneg(vabs(x)));
  const V r = vadd(vmaxr(vzero(), x), vlog1p_pos(t));
  return sel(gt(x, vset(20.f)), x, r);
}

// Standard normal CDF Φ(x) = erfc(-x/√2)/2 with erfc from the Chebyshev fit of
// Numerical Recipes (relative error < 1.2e-7 for all z >= 0); x²/2 is carried
// as hi + lo so the exponent keeps full precision for large |x|. Also returns
// hi/lo for the density.
inline V vphi(V x, V* hi_out, V* lo_out) {
  // Beyond |x| = 15 the tail is below the float range, so |x| is capped there
  // (keeps every intermediate finite; NaN passes through vminr).
  const V xc = vminr(vset(15.f), vabs(x));
  const V t = vrecip1_finite(vfma(xc, vset(0.353553390593273762f), vset(1.f)));
  V p = vset(0.17087277f);
  p = vfma(p, t, vset(-0.82215223f));
  p = vfma(p, t, vset(1.48851587f));
  p = vfma(p, t, vset(-1.13520398f));
  p = vfma(p, t, vset(0.27886807f));
  p = vfma(p, t, vset(-0.18628806f));
  p = vfma(p, t, vset(0.09678418f));
  p = vfma(p, t, vset(0.37409196f));
  p = vfma(p, t, vset(1.00002368f));
  p = vfma(p, t, vset(-1.26551223f));
  const V sq = vmul(xc, xc);
  const V hi = vmul(sq, vset(0.5f));
  const V lo = vmul(vfms(xc, xc, sq), vset(0.5f));
  // s + err = p - hi exactly (two-sum)
  const V nh = vneg(hi);
  const V s = vadd(p, nh);
  const V bb = vsub(s, p);
  const V err = vadd(vsub(p, vsub(s, bb)), vsub(nh, bb));
  V q = vmul(t, vexp(s));
  q = vfma(q, vsub(err, lo), q);
  const V half = vmul(q, vset(0.5f));
  if (hi_out) *hi_out = hi;
  if (lo_out) *lo_out = lo;
  return sel(lt(x, vzero()), half, vsub(vset(1.f), half));
}

inline V vgelu_erf(V x) { return vmul(x, vphi(x, nullptr, nullptr)); }
inline V vgelu_erf_grad(V x) {
  V hi, lo;
  const V cdf = vphi(x, &hi, &lo);
  V pdf = vmul(vexp(vneg(hi)), vset(0.398942280401432678f));
  pdf = vfnma(pdf, lo, pdf);
  return vfma(x, pdf, cdf);
}

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2/pi)
// gelu_tanh(x) = 0.5x(1+tanh(u)) = x·sigmoid(2u), u = k(x + 0.044715x³).
// exp(-2u) amplifies the relative error of 2u by |2u|, so 2u is formed as hi + lo
// with 2k split into two floats; e = exp(-hi)·(1 - lo).
constexpr float kGelu2KHi = 1.59576913f;
constexpr float kGelu2KLo = static_cast<float>(1.5957691216057308 - static_cast<double>(kGelu2KHi));
// kFinite: |x| <= 9, so |2u| < 67 and exp needs no clamps.
template <bool kFinite = false>
inline V vgelu_tanh_e(V x, V x2) {
  const V w = vfma(vmul(x2, vset(0.044715f)), x, x);
  const V hi = vmul(w, vset(kGelu2KHi));
  const V lo = vfma(w, vset(kGelu2KLo), vfms(w, vset(kGelu2KHi), hi));
  return vmul(kFinite ? vexp_finite(vneg(hi)) : vexp(vneg(hi)), vsub(vset(1.f), lo));
}
// Beyond |x| = 20 the sigmoid is exactly 0 or 1 in float; capping keeps hi/lo finite.
inline V vgelu_clamp(V x) { return vmaxr(vset(-20.f), vminr(vset(20.f), x)); }
// Beyond |x| = 9 the sigmoid is 1 or below 1e-28 (e^-66), so the forward caps x there: e stays finite and normal
// (exp without clamps, a finite reciprocal), and x < -9 gives x·0 (-0, or NaN for -inf, as the reference).
inline V vgelu_tanh(V x) {
  const V xc = vmaxr(vset(-9.f), vminr(vset(9.f), x));
  const V g = vmul(x, vrecip1_finite(vadd(vset(1.f), vgelu_tanh_e<true>(xc, vmul(xc, xc)))));
  return sel(lt(x, vset(-9.f)), vmul(x, vzero()), g);
}
inline V vgelu_tanh_grad(V x) {
  const V xc = vgelu_clamp(x);
  const V x2 = vmul(xc, xc);
  const V e = vgelu_tanh_e(xc, x2);
  const V s = vrecip1(vadd(vset(1.f), e));
  const V oms = one_minus_sigmoid(e, s);
  const V du = vmul(vfma(x2, vset(3.f * 0.044715f), vset(1.f)), vset(kGeluK));
  // s + 2x·s(1-s)·u'
  return vfma(vmul(vmul(vadd(x, x), s), oms), du, s);
}

// The activations a linear applies (sigmoid, tanh, silu, gelu, gelu_tanh, relu): calls run(f) with op's vector
// function f (V → V); false for any other op. One definition for the vector kernels and the GEMM's in-register
// epilogue (avx512/gemm_avx512.cc), so both give the same bits.
template <class Run>
inline bool with_activation(Unary op, Run run) {
  const V one = vset(1.f), zero = vzero();
  switch (op) {
    case Unary::Sigmoid: run([&](V v) { return vsigmoid(v); }); return true;
    case Unary::Tanh: run([&](V v) { return vtanh(v); }); return true;
    case Unary::Silu: run([&](V v) { return vmul(v, vrecip1(vadd(one, vexp(vneg(v))))); }); return true;
    case Unary::GeluTanh: run([&](V v) { return vgelu_tanh(v); }); return true;
    case Unary::GeluErf: run([&](V v) { return vgelu_erf(v); }); return true;
    case Unary::Relu: run([&](V v) { return sel(le(v, zero), zero, v); }); return true;
    default: return false;
  }
}

// Calls run(f) with op's vector function f (V → V; a and b are its parameters); false when op has no vector form
// for these parameters (the caller runs the reference).
template <class Run>
inline bool with_unary(Unary op, float a, float b, Run run) {
  if (with_activation(op, run)) return true;
  const V va = vset(a), vb = vset(b), one = vset(1.f), zero = vzero();
  switch (op) {
    case Unary::Neg: run([&](V v) { return vneg(v); }); return true;
    case Unary::Exp: run([&](V v) { return vexp(v); }); return true;
    case Unary::Log: run([&](V v) { return vlog(v); }); return true;
    case Unary::Sqrt: run([&](V v) { return vsqrt(v); }); return true;
    case Unary::Rsqrt: run([&](V v) { return vdiv(one, vsqrt(v)); }); return true;
    case Unary::Abs: run([&](V v) { return vabs(v); }); return true;
    case Unary::Square: run([&](V v) { return vmul(v, v); }); return true;
    case Unary::Sign:
      run([&](V v) { return sel(gt(v, zero), one, sel(lt(v, zero), vset(-1.f), v)); });
      return true;
    case Unary::Softplus: run([&](V v) { return vsoftplus(v); }); return true;
    case Unary::Affine: run([&](V v) { return vadd(vmul(va, v), vb); }); return true;
    case Unary::PowScalar:
      if (a == 0.f) {
        run([&](V) { return one; });
      } else if (a == 1.f) {
        run([&](V v) { return v; });
      } else if (a == 2.f) {
        run([&](V v) { return vmul(v, v); });
      } else if (a == -1.f) {
        run([&](V v) { return vdiv(one, v); });
      } else {
        return false;
      }
      return true;
    case Unary::Clamp: run([&](V v) { return vminr(vb, vmaxr(va, v)); }); return true;
    case Unary::IsNan: run([&](V v) { return sel(isnan(v), one, zero); }); return true;
    case Unary::NanToNum:
      run([&](V v) {
        V r = sel(eq(v, vset(kInf)), vb, v);
        r = sel(eq(v, vset(-kInf)), vneg(vb), r);
        return sel(isnan(v), va, r);
      });
      return true;
    default: return false;
  }
}
