// Shared body of the SIMD vector kernels (exp/log/tanh/gelu/..., elementwise loops,
// group/layer norm, softmax, optimizers), written once against a small per-ISA
// wrapper layer and textually included by avx2/vector_avx2.cc and
// avx512/vector_avx512.cc, each compiled with its own -m flags.
//
// The including file must, before the #include:
//   - include <immintrin.h>, <cstdint>, <cstring> and "kernels/vector_impl.h";
//   - open its ISA namespace and an anonymous namespace inside it (everything here
//     must keep internal linkage: the two compilations may never share an
//     ODR-visible symbol, so no std:: templates or inline library functions here);
//   - define the ISA layer: W (floats per vector); types V (float vector),
//     VI (int32 vector), VD (double vector of W/2 lanes), M (lane mask);
//     vset vzero vload vstore tailmask vloadn vstoren (zero-padded tail load, partial
//     store), vadd vsub vmul vdiv vfma vfnma vfms vsqrt vmaxr vminr vand vor vxor vabs
//     vneg, lt le gt ge eq isnan, mand mor mnot mcount sel, vround vcvti vcvtf, iset
//     iadd isub isra1 isrl23 isll23 iand ior asf asi, hsum lane0, dzero dset dadd dfma
//     dhsum tod_lo tod_hi dstore dload, vldexp (y·2^n) and vrcp (reciprocal estimate).
// It defines kVectorTable, the VectorKernels table the ISA's vector_table() returns.

#include "kernels/simd/vector_math.inl"

// ---------------------------------------------------------------- loops
template <class F>
inline void map1(int64_t n, const float* x, float* y, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(y + i, f(vload(x + i)));
  if (i < n) vstoren(y + i, f(vloadn(x + i, n - i)), n - i);
}
template <class F>
inline void map2(int64_t n, const float* x, const float* g, float* y, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(y + i, f(vload(x + i), vload(g + i)));
  if (i < n) vstoren(y + i, f(vloadn(x + i, n - i), vloadn(g + i, n - i)), n - i);
}
template <class F>
inline void mapg(int64_t n, const float* g, float* y, F f) {  // f(gy)
  map1(n, g, y, f);
}

void unary(Unary op, int64_t n, const float* x, float* y, float a, float b) {
  if (!with_unary(op, a, b, [&](auto f) { map1(n, x, y, f); })) ref::unary(op, n, x, y, a, b);
}

void unary_rows(Unary op, int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy) {
  if (!with_unary(op, 0.f, 0.f, [&](auto f) {
        for (int64_t i = 0; i < rows; ++i) map1(n, x + i * ldx, y + i * ldy, f);
      }))
    for (int64_t i = 0; i < rows; ++i) ref::unary(op, n, x + i * ldx, y + i * ldy, 0.f, 0.f);
}

void unary_backward(Unary op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float a,
                    float b) {
  const V va = vset(a), vb = vset(b), one = vset(1.f), zero = vzero();
  switch (op) {
    case Unary::Neg: mapg(n, gy, gx, [&](V g) { return vneg(g); }); return;
    case Unary::Exp: map2(n, y, gy, gx, [&](V v, V g) { return vmul(g, v); }); return;
    case Unary::Log: map2(n, x, gy, gx, [&](V v, V g) { return vdiv(g, v); }); return;
    case Unary::Sqrt: map2(n, y, gy, gx, [&](V v, V g) { return vdiv(g, vadd(v, v)); }); return;
    case Unary::Rsqrt:
      map2(n, y, gy, gx, [&](V v, V g) { return vmul(vmul(vmul(vmul(vset(-0.5f), g), v), v), v); });
      return;
    case Unary::Abs:
      map2(n, x, gy, gx, [&](V v, V g) {
        const V s = sel(gt(v, zero), one, sel(lt(v, zero), vset(-1.f), sel(eq(v, zero), zero, v)));
        return vmul(g, s);
      });
      return;
    case Unary::Square: map2(n, x, gy, gx, [&](V v, V g) { return vmul(g, vadd(v, v)); }); return;
    case Unary::Sign:
    case Unary::IsNan: mapg(n, gy, gx, [&](V) { return zero; }); return;
    case Unary::Sigmoid: map2(n, y, gy, gx, [&](V v, V g) { return vmul(vmul(g, v), vsub(one, v)); }); return;
    case Unary::Softplus:
      map2(n, x, gy, gx, [&](V v, V g) { return sel(gt(v, vset(20.f)), g, vmul(g, vsigmoid(v))); });
      return;
    case Unary::Tanh: map2(n, y, gy, gx, [&](V v, V g) { return vmul(g, vsub(one, vmul(v, v))); }); return;
    case Unary::Silu:
      map2(n, x, gy, gx, [&](V v, V g) {
        const V e = vexp(vneg(v));
        const V s = vrecip1(vadd(one, e));
        return vmul(g, vmul(s, vfma(v, one_minus_sigmoid(e, s), one)));
      });
      return;
    case Unary::GeluTanh: map2(n, x, gy, gx, [&](V v, V g) { return vmul(g, vgelu_tanh_grad(v)); }); return;
    case Unary::GeluErf: map2(n, x, gy, gx, [&](V v, V g) { return vmul(g, vgelu_erf_grad(v)); }); return;
    case Unary::Relu: map2(n, x, gy, gx, [&](V v, V g) { return sel(le(v, zero), zero, g); }); return;
    case Unary::Affine: mapg(n, gy, gx, [&](V g) { return vmul(va, g); }); return;
    case Unary::PowScalar:
      if (a == 0.f) {
        mapg(n, gy, gx, [&](V) { return zero; });
      } else if (a == 1.f) {
        mapg(n, gy, gx, [&](V g) { return vmul(g, one); });
      } else if (a == 2.f) {
        map2(n, x, gy, gx, [&](V v, V g) { return vmul(vmul(g, vset(2.f)), v); });
      } else {
        ref::unary_backward(op, n, x, y, gy, gx, a, b);
      }
      return;
    case Unary::Clamp:
      map2(n, x, gy, gx, [&](V v, V g) { return sel(mand(ge(v, va), le(v, vb)), g, zero); });
      return;
    case Unary::NanToNum:
      map2(n, x, gy, gx, [&](V v, V g) { return sel(lt(vabs(v), vset(kInf)), g, zero); });
      return;
    default: ref::unary_backward(op, n, x, y, gy, gx, a, b); return;
  }
}

template <class F>
inline void bin_loop(int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out, F f) {
  if (sa && sb) {
    map2(n, a, b, out, f);
  } else if (sa) {
    const V vb = vset(b[0]);
    map1(n, a, out, [&](V v) { return f(v, vb); });
  } else if (sb) {
    const V va = vset(a[0]);
    map1(n, b, out, [&](V v) { return f(va, v); });
  } else {
    const V r = f(vset(a[0]), vset(b[0]));
    int64_t i = 0;
    for (; i + W <= n; i += W) vstore(out + i, r);
    if (i < n) vstoren(out + i, r, n - i);
  }
}

void binary(Binary op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out) {
  switch (op) {
    case Binary::Add: bin_loop(n, a, sa, b, sb, out, [](V x, V y) { return vadd(x, y); }); return;
    case Binary::Sub: bin_loop(n, a, sa, b, sb, out, [](V x, V y) { return vsub(x, y); }); return;
    case Binary::Mul: bin_loop(n, a, sa, b, sb, out, [](V x, V y) { return vmul(x, y); }); return;
    case Binary::Div: bin_loop(n, a, sa, b, sb, out, [](V x, V y) { return vdiv(x, y); }); return;
    case Binary::Maximum:
      bin_loop(n, a, sa, b, sb, out, [](V x, V y) { return sel(isnan(x), x, vmaxr(x, y)); });
      return;
    case Binary::Minimum:
      bin_loop(n, a, sa, b, sb, out, [](V x, V y) { return sel(isnan(x), x, vminr(x, y)); });
      return;
    default: ref::binary(op, n, a, sa, b, sb, out); return;
  }
}

// out = x·y + z, each operand contiguous (stride 1) or one broadcast value (stride 0).
void mul_add(int64_t n, const float* x, int64_t sx, const float* y, int64_t sy, const float* z, int64_t sz, float* out) {
  const V bx = vset(x[0]), by = vset(y[0]), bz = vset(z[0]);
  int64_t i = 0;
  for (; i + W <= n; i += W)
    vstore(out + i, vfma(sx ? vload(x + i) : bx, sy ? vload(y + i) : by, sz ? vload(z + i) : bz));
  if (i < n) {
    const int64_t m = n - i;
    vstoren(out + i, vfma(sx ? vloadn(x + i, m) : bx, sy ? vloadn(y + i, m) : by, sz ? vloadn(z + i, m) : bz), m);
  }
}

void gated_add_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, const float* gate, const float* r, int64_t ldr,
                    float* y, int64_t ldy) {
  for (int64_t i = 0; i < rows; ++i) {
    if (gate)
      mul_add(n, x + i * ldx, 1, gate, 1, r + i * ldr, 1, y + i * ldy);
    else
      (binary)(Binary::Add, n, x + i * ldx, 1, r + i * ldr, 1, y + i * ldy);  // parenthesized: no ADL to kernels::binary
  }
}

// ---------------------------------------------------------------- statistics
// Float partial sums are flushed into double every kFlush elements.
constexpr int64_t kFlush = 512;

// Σ(x - shift), Σ(x - shift)² over n contiguous values.
inline void shifted_moments(int64_t n, const float* x, float shift, double* s_out, double* ss_out) {
  const V sh = vset(shift);
  VD ds = dzero(), dss = dzero();
  int64_t i = 0;
  while (i < n) {
    const int64_t end = (n - i > kFlush) ? i + kFlush : n;
    V s0 = vzero(), s1 = vzero(), q0 = vzero(), q1 = vzero();
    for (; i + 2 * W <= end; i += 2 * W) {
      const V d0 = vsub(vload(x + i), sh), d1 = vsub(vload(x + i + W), sh);
      s0 = vadd(s0, d0);
      s1 = vadd(s1, d1);
      q0 = vfma(d0, d0, q0);
      q1 = vfma(d1, d1, q1);
    }
    for (; i < end; i += W) {
      const int64_t m = end - i < W ? end - i : W;
      const V d = sel(tailmask(m), vsub(vloadn(x + i, m), sh), vzero());
      s0 = vadd(s0, d);
      q0 = vfma(d, d, q0);
    }
    s0 = vadd(s0, s1);
    q0 = vadd(q0, q1);
    ds = dadd(ds, dadd(tod_lo(s0), tod_hi(s0)));
    dss = dadd(dss, dadd(tod_lo(q0), tod_hi(q0)));
  }
  *s_out = dhsum(ds);
  *ss_out = dhsum(dss);
}

// mean and rstd (biased variance, eps inside the sqrt) of n values.
inline void moments(int64_t n, const float* x, float eps, double* mean, double* rstd) {
  if (n <= 0) {
    *mean = 0.0;
    *rstd = 1.0 / dsqrt(static_cast<double>(eps));
    return;
  }
  const float shift = x[0];
  double s, ss;
  shifted_moments(n, x, shift, &s, &ss);
  const double inv = 1.0 / static_cast<double>(n);
  const double ms = s * inv;
  double var = ss * inv - ms * ms;
  if (!(var > 0.0)) var = var != var ? var : 0.0;
  *mean = static_cast<double>(shift) + ms;
  *rstd = 1.0 / dsqrt(var + static_cast<double>(eps));
}

// ---------------------------------------------------------------- group norm
void gn_fwd_block(int64_t Cg, int64_t HW, float eps, const float* x, const float* gamma, const float* beta, bool silu,
                  float* y, float* mean_out, float* rstd_out) {
  double mean, rstd;
  moments(Cg * HW, x, eps, &mean, &rstd);
  *mean_out = static_cast<float>(mean);
  *rstd_out = static_cast<float>(rstd);
  const V vm = vset(static_cast<float>(mean));
  const V one = vset(1.f);
  for (int64_t c = 0; c < Cg; ++c) {
    const V sc = vset(static_cast<float>(rstd * (gamma ? gamma[c] : 1.f)));
    const V bt = vset(beta ? beta[c] : 0.f);
    const float* xc = x + c * HW;
    float* yc = y + c * HW;
    if (silu) {
      map1(HW, xc, yc, [&](V v) {
        const V t = vfma(vsub(v, vm), sc, bt);
        return vmul(t, vrecip1_finite(vadd(one, vexp_neg_capped(t))));
      });
    } else {
      map1(HW, xc, yc, [&](V v) { return vfma(vsub(v, vm), sc, bt); });
    }
  }
}

void gn_bwd_block(int64_t Cg, int64_t HW, const float* x, const float* gamma, const float* beta, bool silu,
                  float mean_f, float rstd_f, const float* gy, float* gx, double* dgamma, double* dbeta) {
  const V vm = vset(mean_f), vr = vset(rstd_f), one = vset(1.f);
  double sum_a = 0, sum_b = 0;
  for (int64_t c = 0; c < Cg; ++c) {
    const float gmf = gamma ? gamma[c] : 1.f;
    const V gm = vset(gmf), bt = vset(beta ? beta[c] : 0.f);
    const float* xc = x + c * HW;
    const float* gc = gy + c * HW;
    float* oc = gx + c * HW;
    VD dsd = dzero(), dbd = dzero();
    int64_t i = 0;
    while (i < HW) {
      const int64_t end = (HW - i > kFlush) ? i + kFlush : HW;
      V ds = vzero(), db = vzero();
      for (; i < end; i += W) {
        const int64_t m = end - i < W ? end - i : W;
        const bool full = m == W;
        const V xv = full ? vload(xc + i) : vloadn(xc + i, m);
        V d = full ? vload(gc + i) : vloadn(gc + i, m);
        const V xh = vmul(vsub(xv, vm), vr);
        if (silu) {
          const V t = vfma(xh, gm, bt);
          const V e = vexp_neg_capped(t);
          const V s = vrecip1_finite(vadd(one, e));
          d = vmul(d, vmul(s, vfma(t, one_minus_sigmoid(e, s), one)));
          if (full) vstore(oc + i, d); else vstoren(oc + i, d, m);
        }
        if (!full) {
          const M tm = tailmask(m);
          d = sel(tm, d, vzero());
        }
        db = vadd(db, d);
        ds = vfma(d, xh, ds);
      }
      dsd = dadd(dsd, dadd(tod_lo(ds), tod_hi(ds)));
      dbd = dadd(dbd, dadd(tod_lo(db), tod_hi(db)));
    }
    const double dsv = dhsum(dsd), dbv = dhsum(dbd);
    dgamma[c] = dsv;
    dbeta[c] = dbv;
    sum_a += dbv * gmf;
    sum_b += dsv * gmf;
  }
  const int64_t cnt = Cg * HW;
  const double inv = cnt > 0 ? 1.0 / static_cast<double>(cnt) : 0.0;
  const double rs = rstd_f;
  const double ma = sum_a * inv, mb = sum_b * inv;
  // gx = rstd·(dy·γ - ma - x̂·mb) = dy·A + (x - mean)·Cc + B
  const V B = vset(static_cast<float>(-rs * ma));
  const V Cc = vset(static_cast<float>(-rs * rs * mb));
  for (int64_t c = 0; c < Cg; ++c) {
    const V A = vset(static_cast<float>(rs * (gamma ? gamma[c] : 1.f)));
    const float* xc = x + c * HW;
    const float* dc = silu ? gx + c * HW : gy + c * HW;
    float* oc = gx + c * HW;
    map2(HW, xc, dc, oc, [&](V xv, V d) { return vfma(d, A, vfma(vsub(xv, vm), Cc, B)); });
  }
}

// ---------------------------------------------------------------- layer norm
void ln_fwd_rows(int64_t rows, int64_t D, float eps, const float* x, const float* gamma, const float* beta, float* y,
                 float* mean_out, float* rstd_out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    double mean, rstd;
    moments(D, xr, eps, &mean, &rstd);
    if (mean_out) mean_out[r] = static_cast<float>(mean);
    if (rstd_out) rstd_out[r] = static_cast<float>(rstd);
    const V vm = vset(static_cast<float>(mean)), vr = vset(static_cast<float>(rstd));
    int64_t i = 0;
    for (; i < D; i += W) {
      const int64_t m = D - i < W ? D - i : W;
      const bool full = m == W;
      const V xv = full ? vload(xr + i) : vloadn(xr + i, m);
      V t = vmul(vsub(xv, vm), vr);
      if (gamma) t = vmul(t, full ? vload(gamma + i) : vloadn(gamma + i, m));
      if (beta) t = vadd(t, full ? vload(beta + i) : vloadn(beta + i, m));
      if (full) vstore(yr + i, t); else vstoren(yr + i, t, m);
    }
  }
}

void ln_bwd_rows(int64_t rows, int64_t D, const float* x, const float* gamma, const float* mean, const float* rstd,
                 const float* gy, float* gx) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    const float* gr = gy + r * D;
    float* o = gx + r * D;
    const V vm = vset(mean[r]);
    VD sad = dzero(), sbd = dzero();
    int64_t i = 0;
    while (i < D) {
      const int64_t end = (D - i > kFlush) ? i + kFlush : D;
      V sa = vzero(), sb = vzero();
      for (; i < end; i += W) {
        const int64_t m = end - i < W ? end - i : W;
        const bool full = m == W;
        V d = full ? vload(gr + i) : vloadn(gr + i, m);
        if (gamma) d = vmul(d, full ? vload(gamma + i) : vloadn(gamma + i, m));
        const V xc = full ? vsub(vload(xr + i), vm) : sel(tailmask(m), vsub(vloadn(xr + i, m), vm), vzero());
        sa = vadd(sa, d);
        sb = vfma(d, xc, sb);
      }
      sad = dadd(sad, dadd(tod_lo(sa), tod_hi(sa)));
      sbd = dadd(sbd, dadd(tod_lo(sb), tod_hi(sb)));
    }
    const double rs = rstd[r];
    const double inv = 1.0 / static_cast<double>(D);
    const double ma = dhsum(sad) * inv, mb = dhsum(sbd) * rs * inv;
    // gx = rs·d - rs·ma - (x - mean)·rs²·mb
    const V A = vset(static_cast<float>(rs)), B = vset(static_cast<float>(-rs * ma)),
            Cc = vset(static_cast<float>(-rs * rs * mb));
    for (i = 0; i < D; i += W) {
      const int64_t m = D - i < W ? D - i : W;
      const bool full = m == W;
      V d = full ? vload(gr + i) : vloadn(gr + i, m);
      if (gamma) d = vmul(d, full ? vload(gamma + i) : vloadn(gamma + i, m));
      const V xc = vsub(full ? vload(xr + i) : vloadn(xr + i, m), vm);
      const V t = vfma(d, A, vfma(xc, Cc, B));
      if (full) vstore(o + i, t); else vstoren(o + i, t, m);
    }
  }
}

void ln_param_grad(int64_t M_, int64_t D, int64_t d0, int64_t d1, const float* x, const float* mean, const float* rstd,
                   const float* gy, float* ggamma, float* gbeta) {
  for (int64_t d = d0; d < d1; d += W) {
    const int64_t m = d1 - d < W ? d1 - d : W;
    const bool full = m == W;
    VD g_lo = dzero(), g_hi = dzero(), b_lo = dzero(), b_hi = dzero();
    int64_t r = 0;
    while (r < M_) {
      const int64_t end = (M_ - r > 64) ? r + 64 : M_;
      V ag = vzero(), ab = vzero();
      for (; r < end; ++r) {
        const float* gr = gy + r * D + d;
        const float* xr = x + r * D + d;
        const V gv = full ? vload(gr) : vloadn(gr, m);
        const V xv = full ? vload(xr) : vloadn(xr, m);
        const V xh = vmul(vsub(xv, vset(mean[r])), vset(rstd[r]));
        ag = vfma(gv, xh, ag);
        ab = vadd(ab, gv);
      }
      g_lo = dadd(g_lo, tod_lo(ag));
      g_hi = dadd(g_hi, tod_hi(ag));
      b_lo = dadd(b_lo, tod_lo(ab));
      b_hi = dadd(b_hi, tod_hi(ab));
    }
    double tmp[2 * W];
    float out[W];
    if (ggamma) {
      dstore(tmp, g_lo);
      dstore(tmp + W / 2, g_hi);
      for (int64_t k = 0; k < m; ++k) out[k] = static_cast<float>(tmp[k]);
      std::memcpy(ggamma + d, out, static_cast<size_t>(m) * sizeof(float));
    }
    if (gbeta) {
      dstore(tmp, b_lo);
      dstore(tmp + W / 2, b_hi);
      for (int64_t k = 0; k < m; ++k) out[k] = static_cast<float>(tmp[k]);
      std::memcpy(gbeta + d, out, static_cast<size_t>(m) * sizeof(float));
    }
  }
}

// ---------------------------------------------------------------- softmax
void softmax_fwd_rows(int64_t rows, int64_t D, const float* x, float* y, bool log) {
  const V ninf = vset(-kInf);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    V mx = ninf;
    int64_t i = 0;
    for (; i + W <= D; i += W) mx = vmaxr(mx, vload(xr + i));
    if (i < D) mx = vmaxr(mx, sel(tailmask(D - i), vloadn(xr + i, D - i), ninf));
    float mxs = -kInf;
    {
      float lanes[W];
      vstore(lanes, mx);
      for (int64_t k = 0; k < W; ++k) mxs = lanes[k] > mxs ? lanes[k] : mxs;
    }
    const V vm = vset(mxs);
    // NaN inputs make the sum NaN, so every output of the row is NaN.
    VD sd = dzero();
    i = 0;
    while (i < D) {
      const int64_t end = (D - i > kFlush) ? i + kFlush : D;
      V s = vzero();
      for (; i < end; i += W) {
        const int64_t m = end - i < W ? end - i : W;
        if (m == W) {
          const V e = vexp(vsub(vload(xr + i), vm));
          if (!log) vstore(yr + i, e);
          s = vadd(s, e);
        } else {
          const V e = sel(tailmask(m), vexp(vsub(vloadn(xr + i, m), vm)), vzero());
          if (!log) vstoren(yr + i, e, m);
          s = vadd(s, e);
        }
      }
      sd = dadd(sd, dadd(tod_lo(s), tod_hi(s)));
    }
    const double sum = dhsum(sd);
    if (log) {
      const V off = vadd(vm, vlog(vset(static_cast<float>(sum))));
      map1(D, xr, yr, [&](V v) { return vsub(v, off); });
    } else {
      const V inv = vset(static_cast<float>(1.0 / sum));
      map1(D, yr, yr, [&](V v) { return vmul(v, inv); });
    }
  }
}

void softmax_bwd_rows(int64_t rows, int64_t D, const float* y, const float* gy, float* gx, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * D;
    const float* gr = gy + r * D;
    float* o = gx + r * D;
    VD sd = dzero();
    int64_t i = 0;
    while (i < D) {
      const int64_t end = (D - i > kFlush) ? i + kFlush : D;
      V s = vzero();
      for (; i < end; i += W) {
        const int64_t m = end - i < W ? end - i : W;
        const bool full = m == W;
        const V g = full ? vload(gr + i) : vloadn(gr + i, m);  // padded lanes are 0
        if (log) {
          s = vadd(s, g);
        } else {
          s = vfma(g, full ? vload(yr + i) : vloadn(yr + i, m), s);
        }
      }
      sd = dadd(sd, dadd(tod_lo(s), tod_hi(s)));
    }
    const V vs = vset(static_cast<float>(dhsum(sd)));
    if (log) {
      map2(D, yr, gr, o, [&](V v, V g) { return vfnma(vexp(v), vs, g); });
    } else {
      map2(D, yr, gr, o, [&](V v, V g) { return vmul(v, vsub(g, vs)); });
    }
  }
}

// ---------------------------------------------------------------- optimizers
void adam(int64_t n, float* param, const float* grad, float* m, float* v, const AdamParams& p) {
  const V step = vset(p.lr / p.bias_c1), inv_c2 = vset(1.f / p.bias_c2), decay = vset(1.f - p.lr * p.weight_decay);
  const V b1 = vset(p.beta1), c1 = vset(1.f - p.beta1), b2 = vset(p.beta2), c2 = vset(1.f - p.beta2);
  const V eps = vset(p.eps), wd = vset(p.weight_decay), gs = vset(p.grad_scale);
  const bool dec = p.decoupled;
  for (int64_t i = 0; i < n; i += W) {
    const int64_t k = n - i < W ? n - i : W;
    const bool full = k == W;
    V w = full ? vload(param + i) : vloadn(param + i, k);
    V g = vmul(full ? vload(grad + i) : vloadn(grad + i, k), gs);
    if (dec) {
      w = vmul(w, decay);
    } else {
      g = vadd(g, vmul(wd, w));
    }
    V mi = g;  // beta1 == 0: m = g exactly (old m, even NaN garbage, is ignored)
    if (m) {
      if (p.beta1 != 0.f) mi = vadd(vmul(b1, full ? vload(m + i) : vloadn(m + i, k)), vmul(c1, g));
      if (full) vstore(m + i, mi); else vstoren(m + i, mi, k);
    }
    const V vi = vadd(vmul(b2, full ? vload(v + i) : vloadn(v + i, k)), vmul(vmul(c2, g), g));
    if (full) vstore(v + i, vi); else vstoren(v + i, vi, k);
    const V upd = vdiv(vmul(step, mi), vadd(vsqrt(vmul(vi, inv_c2)), eps));
    w = vsub(w, upd);
    if (full) vstore(param + i, w); else vstoren(param + i, w, k);
  }
}

void sgd(int64_t n, float* param, const float* grad, float* buf, float lr, float momentum, float weight_decay,
         bool nesterov, float grad_scale) {
  const V vlr = vset(lr), mom = vset(momentum), wd = vset(weight_decay), gs = vset(grad_scale);
  const bool use_buf = momentum != 0.f && buf;
  for (int64_t i = 0; i < n; i += W) {
    const int64_t k = n - i < W ? n - i : W;
    const bool full = k == W;
    const V w = full ? vload(param + i) : vloadn(param + i, k);
    const V g = vadd(vmul(full ? vload(grad + i) : vloadn(grad + i, k), gs), vmul(wd, w));
    V upd = g;
    if (use_buf) {
      const V bv = vadd(vmul(mom, full ? vload(buf + i) : vloadn(buf + i, k)), g);
      if (full) vstore(buf + i, bv); else vstoren(buf + i, bv, k);
      upd = nesterov ? vadd(g, vmul(mom, bv)) : bv;
    }
    const V r = vsub(w, vmul(vlr, upd));
    if (full) vstore(param + i, r); else vstoren(param + i, r, k);
  }
}

void ema(int64_t n, float* e, const float* param, float decay) {
  const V d = vset(decay), c = vset(1.f - decay);
  map2(n, e, param, e, [&](V ev, V pv) { return vadd(vmul(d, ev), vmul(c, pv)); });
}

double sum_squares(int64_t n, const float* x) {
  VD a0 = dzero(), a1 = dzero(), a2 = dzero(), a3 = dzero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const V v0 = vload(x + i), v1 = vload(x + i + W);
    const VD l0 = tod_lo(v0), h0 = tod_hi(v0), l1 = tod_lo(v1), h1 = tod_hi(v1);
    a0 = dfma(l0, l0, a0);
    a1 = dfma(h0, h0, a1);
    a2 = dfma(l1, l1, a2);
    a3 = dfma(h1, h1, a3);
  }
  for (; i < n; i += W) {
    const int64_t k = n - i < W ? n - i : W;
    const V v0 = vloadn(x + i, k);  // zero padded
    const VD l0 = tod_lo(v0), h0 = tod_hi(v0);
    a0 = dfma(l0, l0, a0);
    a1 = dfma(h0, h0, a1);
  }
  return dhsum(dadd(dadd(a0, a1), dadd(a2, a3)));
}

int64_t sanitize(int64_t n, float* x) {
  int64_t cnt = 0;
  const V inf = vset(kInf), zero = vzero();
  for (int64_t i = 0; i < n; i += W) {
    const int64_t k = n - i < W ? n - i : W;
    const bool full = k == W;
    const V v = full ? vload(x + i) : vloadn(x + i, k);
    const M bad = mnot(lt(vabs(v), inf));
    const int c = mcount(bad);
    if (c) {
      cnt += c;
      const V r = sel(bad, zero, v);
      if (full) vstore(x + i, r); else vstoren(x + i, r, k);
    }
  }
  return cnt;
}

constexpr VectorKernels kVectorTable = {
    &unary,       &unary_backward, &binary,        &gn_fwd_block,     &gn_bwd_block,
    &ln_fwd_rows, &ln_bwd_rows,    &ln_param_grad, &softmax_fwd_rows, &softmax_bwd_rows,
    &adam,        &sgd,            &ema,           &sum_squares,      &sanitize,
    &mul_add,     &unary_rows, &gated_add_rows,
};
