// Vector kernel check + benchmark: every ISA the CPU supports against the scalar
// reference (unary/binary/norms/softmax/optimizers, odd sizes and special
// values), max relative error of the vector transcendentals against double
// precision, thread-count determinism, and throughput in GB/s.
// Usage: kbench_vector [--quick]   (exit status 1 if any check fails)
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "kernels/vector.h"
#include "kernels/vector_impl.h"

using namespace fd;
using namespace fd::kernels;

namespace {

int g_failures = 0;
int g_checks = 0;
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

using fd::kernels::binary_name;
using fd::kernels::unary_name;

// max |f - r| / max(1, |r|); NaN must match NaN, infinities must match exactly. Returns +inf on a mismatch of kind.
double compare(const float* f, const float* r, int64_t n, int64_t* where = nullptr) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    double e;
    if (std::isnan(r[i]) || std::isnan(f[i])) {
      e = (std::isnan(r[i]) && std::isnan(f[i])) ? 0.0 : INFINITY;
    } else if (std::isinf(r[i]) || std::isinf(f[i])) {
      e = (f[i] == r[i]) ? 0.0 : INFINITY;
    } else {
      e = std::fabs(static_cast<double>(f[i]) - r[i]) / std::max(1.0, std::fabs(static_cast<double>(r[i])));
    }
    if (e > worst) {
      worst = e;
      if (where) *where = i;
    }
  }
  return worst;
}

// Normwise: max |f - r| / max(1, max |r|) (for reductions whose entries can cancel).
bool check(const std::string& what, const std::vector<float>& f, const std::vector<float>& r, double tol);
bool check_norm(const std::string& what, const std::vector<float>& f, const std::vector<float>& r, double tol) {
  double scale = 1.0;
  for (float v : r) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  std::vector<float> fs(f.size()), rs(r.size());
  for (size_t i = 0; i < f.size(); ++i) fs[i] = static_cast<float>(f[i] / scale), rs[i] = static_cast<float>(r[i] / scale);
  return check(what + " (normwise)", fs, rs, tol);
}

bool check(const std::string& what, const std::vector<float>& f, const std::vector<float>& r, double tol) {
  ++g_checks;
  int64_t at = -1;
  const double e = compare(f.data(), r.data(), static_cast<int64_t>(r.size()), &at);
  if (!(e <= tol)) {
    ++g_failures;
    if (g_failures <= 40)
      std::printf("FAIL %-50s err %.3g (tol %.1g) at %lld: fast %.9g ref %.9g\n", what.c_str(), e, tol,
                  static_cast<long long>(at), at >= 0 ? f[at] : 0.f, at >= 0 ? r[at] : 0.f);
    return false;
  }
  return true;
}

std::vector<float> randu(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

// Sprinkles special values at fixed positions.
void add_specials(std::vector<float>& v, bool positive_domain) {
  const float sp[] = {0.f, -0.f, kInf, -kInf, kNaN, 1e-30f, -1e-30f, 1e-40f, 88.f, -88.f, 100.f, -100.f, 1.f, -1.f, 20.f, 20.5f, 1e30f};
  const int ns = sizeof(sp) / sizeof(sp[0]);
  for (int k = 0; k < ns; ++k) {
    const size_t pos = static_cast<size_t>(k) * 37 + 3;
    if (pos < v.size()) v[pos] = positive_domain && k > 4 ? std::fabs(sp[k]) : sp[k];
  }
}

std::vector<Isa> fast_isas() {
  std::vector<Isa> v;
  const Isa best = best_isa();
  if (static_cast<int>(best) >= static_cast<int>(Isa::Avx2)) v.push_back(Isa::Avx2);
  if (best == Isa::Avx512) v.push_back(Isa::Avx512);
  return v;
}

const int64_t kSizes[] = {1, 7, 15, 16, 17, 33, 129, 1000, 100003};

struct UnaryCase {
  Unary op;
  float a, b;
  float lo, hi;
  bool positive;
};

std::vector<UnaryCase> unary_cases() {
  std::vector<UnaryCase> c;
  for (int i = 0; i < static_cast<int>(Unary::Count); ++i) {
    const Unary op = static_cast<Unary>(i);
    switch (op) {
      case Unary::Log: case Unary::Sqrt: case Unary::Rsqrt: c.push_back({op, 0, 0, 1e-3f, 100.f, true}); break;
      case Unary::Exp: c.push_back({op, 0, 0, -90.f, 90.f, false}); break;
      case Unary::Affine: c.push_back({op, 1.5f, -0.25f, -8.f, 8.f, false}); break;
      case Unary::PowScalar:
        for (float a : {0.f, 1.f, 2.f, 3.f, -1.f, 0.5f, 1.7f}) c.push_back({op, a, 0, 0.01f, 4.f, false});
        break;
      case Unary::Clamp: c.push_back({op, -1.f, 2.f, -4.f, 4.f, false}); break;
      case Unary::NanToNum: c.push_back({op, 0.5f, 100.f, -4.f, 4.f, false}); break;
      default: c.push_back({op, 0, 0, -12.f, 12.f, false}); break;
    }
  }
  return c;
}

void test_unary() {
  for (const UnaryCase& uc : unary_cases()) {
    for (int64_t n : kSizes) {
      std::vector<float> x = randu(n, uc.lo, uc.hi, static_cast<uint32_t>(n * 31 + static_cast<int>(uc.op)));
      add_specials(x, uc.positive);
      std::vector<float> gy = randu(n, -2.f, 2.f, 7 + static_cast<uint32_t>(n));
      std::vector<float> yr(n), gr(n);
      set_active_isa(Isa::Scalar);
      unary(uc.op, n, x.data(), yr.data(), uc.a, uc.b);
      unary_backward(uc.op, n, x.data(), yr.data(), gy.data(), gr.data(), uc.a, uc.b);
      for (Isa isa : fast_isas()) {
        set_active_isa(isa);
        std::vector<float> yf(n), gf(n);
        unary(uc.op, n, x.data(), yf.data(), uc.a, uc.b);
        char name[128];
        std::snprintf(name, sizeof name, "%s unary %s(a=%g) n=%lld", isa_name(isa), unary_name(uc.op), uc.a,
                      static_cast<long long>(n));
        check(name, yf, yr, 4e-6);
        // in place
        std::vector<float> ip = x;
        unary(uc.op, n, ip.data(), ip.data(), uc.a, uc.b);
        check(std::string(name) + " inplace", ip, yr, 4e-6);
        unary_backward(uc.op, n, x.data(), yr.data(), gy.data(), gf.data(), uc.a, uc.b);
        std::snprintf(name, sizeof name, "%s unary_backward %s(a=%g) n=%lld", isa_name(isa), unary_name(uc.op), uc.a,
                      static_cast<long long>(n));
        check(name, gf, gr, 4e-6);
      }
    }
  }
}

void test_binary() {
  for (int o = 0; o < static_cast<int>(Binary::Count); ++o) {
    const Binary op = static_cast<Binary>(o);
    for (int64_t n : kSizes) {
      std::vector<float> a = randu(n, op == Binary::Pow ? 0.01f : -4.f, 4.f, 11 + static_cast<uint32_t>(n));
      std::vector<float> b = randu(n, op == Binary::Pow ? -3.f : -4.f, 4.f, 13 + static_cast<uint32_t>(n));
      if (op == Binary::Div)
        for (auto& v : b) v = std::fabs(v) < 0.05f ? 0.5f : v;
      add_specials(a, false);
      if (n > 200) b[200] = kNaN, b[201] = kInf, b[202] = -0.f;
      for (int64_t sa : {0, 1})
        for (int64_t sb : {0, 1}) {
          std::vector<float> r(n);
          set_active_isa(Isa::Scalar);
          binary(op, n, a.data(), sa, b.data(), sb, r.data());
          for (Isa isa : fast_isas()) {
            set_active_isa(isa);
            std::vector<float> f(n);
            binary(op, n, a.data(), sa, b.data(), sb, f.data());
            char name[128];
            std::snprintf(name, sizeof name, "%s binary %s sa=%lld sb=%lld n=%lld", isa_name(isa), binary_name(op),
                          static_cast<long long>(sa), static_cast<long long>(sb), static_cast<long long>(n));
            check(name, f, r, 4e-6);
            if (sa) {
              std::vector<float> ip = a;
              binary(op, n, ip.data(), sa, b.data(), sb, ip.data());
              check(std::string(name) + " inplace", ip, r, 4e-6);
            }
          }
        }
    }
  }
}

struct GnShape {
  int64_t N, C, HW, G;
};

void test_group_norm() {
  const GnShape shapes[] = {{16, 64, 784, 32}, {3, 8, 30, 4}, {2, 6, 1, 3}, {1, 4, 17, 2}, {2, 32, 4096, 8}};
  for (const GnShape& s : shapes) {
    const int64_t n = s.N * s.C * s.HW;
    std::vector<float> x = randu(n, -1.f, 3.f, 5);
    std::vector<float> gy = randu(n, -1.f, 1.f, 6);
    std::vector<float> gamma = randu(s.C, 0.5f, 1.5f, 7), beta = randu(s.C, -0.5f, 0.5f, 8);
    for (int affine = 0; affine < 2; ++affine)
      for (int silu = 0; silu < 2; ++silu) {
        const float* gm = affine ? gamma.data() : nullptr;
        const float* bt = affine ? beta.data() : nullptr;
        std::vector<float> yr(n), mr(s.N * s.G), rr(s.N * s.G), gxr(n), ggr(s.C), gbr(s.C);
        set_active_isa(Isa::Scalar);
        group_norm_forward(s.N, s.C, s.HW, s.G, 1e-5f, x.data(), gm, bt, silu, yr.data(), mr.data(), rr.data());
        group_norm_backward(s.N, s.C, s.HW, s.G, x.data(), gm, bt, silu, mr.data(), rr.data(), gy.data(), gxr.data(),
                            ggr.data(), gbr.data());
        for (Isa isa : fast_isas()) {
          set_active_isa(isa);
          std::vector<float> y(n), m(s.N * s.G), r(s.N * s.G), gx(n), gg(s.C), gb(s.C);
          group_norm_forward(s.N, s.C, s.HW, s.G, 1e-5f, x.data(), gm, bt, silu, y.data(), m.data(), r.data());
          group_norm_backward(s.N, s.C, s.HW, s.G, x.data(), gm, bt, silu, mr.data(), rr.data(), gy.data(), gx.data(),
                              gg.data(), gb.data());
          char name[160];
          std::snprintf(name, sizeof name, "%s group_norm N=%lld C=%lld HW=%lld G=%lld affine=%d silu=%d",
                        isa_name(isa), static_cast<long long>(s.N), static_cast<long long>(s.C),
                        static_cast<long long>(s.HW), static_cast<long long>(s.G), affine, silu);
          check(std::string(name) + " y", y, yr, 1e-5);
          check(std::string(name) + " mean", m, mr, 1e-5);
          check(std::string(name) + " rstd", r, rr, 1e-5);
          check(std::string(name) + " gx", gx, gxr, 1e-5);
          check_norm(std::string(name) + " ggamma", gg, ggr, 1e-5);
          check_norm(std::string(name) + " gbeta", gb, gbr, 1e-5);
          // in place: y over x, gx over gy
          std::vector<float> xi = x, gi = gy;
          group_norm_forward(s.N, s.C, s.HW, s.G, 1e-5f, xi.data(), gm, bt, silu, xi.data(), m.data(), r.data());
          check(std::string(name) + " y inplace", xi, yr, 1e-5);
          group_norm_backward(s.N, s.C, s.HW, s.G, x.data(), gm, bt, silu, mr.data(), rr.data(), gi.data(), gi.data(),
                              gg.data(), gb.data());
          check(std::string(name) + " gx inplace", gi, gxr, 1e-5);
          check_norm(std::string(name) + " ggamma inplace", gg, ggr, 1e-5);
        }
      }
  }
}

void test_layer_norm() {
  const int64_t shapes[][2] = {{7, 33}, {3, 1}, {64, 768}, {5, 16}, {300, 40}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], D = s[1], n = M * D;
    std::vector<float> x = randu(n, -2.f, 4.f, 21), gy = randu(n, -1.f, 1.f, 22);
    std::vector<float> gamma = randu(D, 0.5f, 1.5f, 23), beta = randu(D, -0.5f, 0.5f, 24);
    for (int affine = 0; affine < 2; ++affine) {
      const float* gm = affine ? gamma.data() : nullptr;
      const float* bt = affine ? beta.data() : nullptr;
      std::vector<float> yr(n), mr(M), rr(M), gxr(n), ggr(D), gbr(D);
      set_active_isa(Isa::Scalar);
      layer_norm_forward(M, D, 1e-5f, x.data(), gm, bt, yr.data(), mr.data(), rr.data());
      layer_norm_backward(M, D, x.data(), gm, mr.data(), rr.data(), gy.data(), gxr.data(), ggr.data(), gbr.data());
      for (Isa isa : fast_isas()) {
        set_active_isa(isa);
        std::vector<float> y(n), m(M), r(M), gx(n), gg(D), gb(D);
        layer_norm_forward(M, D, 1e-5f, x.data(), gm, bt, y.data(), m.data(), r.data());
        layer_norm_backward(M, D, x.data(), gm, mr.data(), rr.data(), gy.data(), gx.data(), gg.data(), gb.data());
        char name[128];
        std::snprintf(name, sizeof name, "%s layer_norm M=%lld D=%lld affine=%d", isa_name(isa),
                      static_cast<long long>(M), static_cast<long long>(D), affine);
        check(std::string(name) + " y", y, yr, 1e-5);
        check(std::string(name) + " mean", m, mr, 1e-5);
        check(std::string(name) + " rstd", r, rr, 1e-5);
        check(std::string(name) + " gx", gx, gxr, 1e-5);
        check_norm(std::string(name) + " ggamma", gg, ggr, 1e-5);
        check_norm(std::string(name) + " gbeta", gb, gbr, 1e-5);
        std::vector<float> gi = gy;
        layer_norm_backward(M, D, x.data(), gm, mr.data(), rr.data(), gi.data(), gi.data(), gg.data(), gb.data());
        check(std::string(name) + " gx inplace", gi, gxr, 1e-5);
        check_norm(std::string(name) + " ggamma inplace", gg, ggr, 1e-5);
        check_norm(std::string(name) + " gbeta inplace", gb, gbr, 1e-5);
      }
    }
  }
}

void test_softmax() {
  const int64_t shapes[][2] = {{5, 1}, {9, 19}, {33, 256}, {2, 1000}, {3, 5000}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], D = s[1], n = M * D;
    std::vector<float> x = randu(n, -10.f, 10.f, 31), gy = randu(n, -1.f, 1.f, 32);
    if (D > 3) x[1] = -kInf;  // a masked entry
    for (int lg = 0; lg < 2; ++lg) {
      std::vector<float> yr(n), gxr(n);
      set_active_isa(Isa::Scalar);
      softmax_forward(M, D, x.data(), yr.data(), lg);
      softmax_backward(M, D, yr.data(), gy.data(), gxr.data(), lg);
      for (Isa isa : fast_isas()) {
        set_active_isa(isa);
        std::vector<float> y(n), gx(n);
        softmax_forward(M, D, x.data(), y.data(), lg);
        softmax_backward(M, D, yr.data(), gy.data(), gx.data(), lg);
        char name[128];
        std::snprintf(name, sizeof name, "%s softmax M=%lld D=%lld log=%d", isa_name(isa), static_cast<long long>(M),
                      static_cast<long long>(D), lg);
        check(std::string(name) + " y", y, yr, 1e-5);
        check(std::string(name) + " gx", gx, gxr, 1e-5);
        std::vector<float> xi = x, gi = gy;
        softmax_forward(M, D, xi.data(), xi.data(), lg);
        check(std::string(name) + " y inplace", xi, yr, 1e-5);
        softmax_backward(M, D, yr.data(), gi.data(), gi.data(), lg);
        check(std::string(name) + " gx inplace", gi, gxr, 1e-5);
      }
    }
  }
}

void test_optimizers() {
  for (int64_t n : kSizes) {
    const std::vector<float> p0 = randu(n, -1.f, 1.f, 41), g = randu(n, -0.1f, 0.1f, 42);
    const std::vector<float> m0 = randu(n, -0.05f, 0.05f, 43), v0 = randu(n, 0.f, 0.01f, 44);
    for (int variant = 0; variant < 4; ++variant) {
      AdamParams ap{1e-3f, variant == 2 ? 0.f : 0.9f, 0.999f, 1e-8f, variant == 3 ? 0.f : 0.01f, variant != 1,
                    1.f - std::pow(0.9f, 3.f), 1.f - std::pow(0.999f, 3.f), variant == 1 ? 0.5f : 1.f};
      const bool null_m = variant == 2;
      std::vector<float> pr = p0, mr = m0, vr = v0;
      if (variant == 3) ap.beta1 = 0.f, mr.assign(n, kNaN);  // beta1 = 0 ignores (even NaN) m
      const std::vector<float> m_init = mr;
      set_active_isa(Isa::Scalar);
      adam_step(n, pr.data(), g.data(), null_m ? nullptr : mr.data(), vr.data(), ap);
      for (Isa isa : fast_isas()) {
        set_active_isa(isa);
        std::vector<float> p = p0, m = m_init, v = v0;
        adam_step(n, p.data(), g.data(), null_m ? nullptr : m.data(), v.data(), ap);
        char name[128];
        std::snprintf(name, sizeof name, "%s adam variant=%d n=%lld", isa_name(isa), variant,
                      static_cast<long long>(n));
        check(std::string(name) + " p", p, pr, 4e-6);
        check(std::string(name) + " m", m, mr, 4e-6);
        check(std::string(name) + " v", v, vr, 4e-6);
      }
    }
    for (int variant = 0; variant < 3; ++variant) {
      const float mom = variant == 0 ? 0.f : 0.9f;
      const bool nest = variant == 2;
      std::vector<float> pr = p0, br = m0;
      set_active_isa(Isa::Scalar);
      sgd_step(n, pr.data(), g.data(), br.data(), 0.1f, mom, 1e-4f, nest, 0.7f);
      for (Isa isa : fast_isas()) {
        set_active_isa(isa);
        std::vector<float> p = p0, b = m0;
        sgd_step(n, p.data(), g.data(), b.data(), 0.1f, mom, 1e-4f, nest, 0.7f);
        char name[128];
        std::snprintf(name, sizeof name, "%s sgd variant=%d n=%lld", isa_name(isa), variant, static_cast<long long>(n));
        check(std::string(name) + " p", p, pr, 4e-6);
        check(std::string(name) + " buf", b, br, 4e-6);
      }
    }
    {
      std::vector<float> er = m0;
      set_active_isa(Isa::Scalar);
      ema_update(n, er.data(), p0.data(), 0.999f);
      const double ssr = sum_squares(n, p0.data());
      std::vector<float> sr = p0;
      add_specials(sr, false);
      const int64_t cr = sanitize_nonfinite(n, sr.data());
      for (Isa isa : fast_isas()) {
        set_active_isa(isa);
        std::vector<float> e = m0;
        ema_update(n, e.data(), p0.data(), 0.999f);
        char name[128];
        std::snprintf(name, sizeof name, "%s ema n=%lld", isa_name(isa), static_cast<long long>(n));
        check(name, e, er, 4e-6);
        const double ss = sum_squares(n, p0.data());
        ++g_checks;
        if (!(std::fabs(ss - ssr) <= 1e-12 * std::max(1.0, ssr))) {
          ++g_failures;
          std::printf("FAIL %s sum_squares n=%lld: %.17g vs %.17g\n", isa_name(isa), static_cast<long long>(n), ss, ssr);
        }
        std::vector<float> s = p0;
        add_specials(s, false);
        const int64_t c = sanitize_nonfinite(n, s.data());
        std::snprintf(name, sizeof name, "%s sanitize n=%lld", isa_name(isa), static_cast<long long>(n));
        check(name, s, sr, 0.0);
        ++g_checks;
        if (c != cr) {
          ++g_failures;
          std::printf("FAIL %s sanitize count %lld vs %lld\n", isa_name(isa), static_cast<long long>(c),
                      static_cast<long long>(cr));
        }
      }
    }
  }
}

// Results must be bit-identical for 1 and N threads. The single-thread run is made
// from inside a parallel region (nested parallel_for runs inline), so the pool is
// never resized.
void test_determinism() {
  const int threads = ThreadPool::global().num_threads();
  const int64_t N = 4, C = 64, HW = 4096, G = 32, n = N * C * HW;
  const std::vector<float> x = randu(n, -1.f, 3.f, 51), gy = randu(n, -1.f, 1.f, 52);
  const std::vector<float> gamma = randu(C, 0.5f, 1.5f, 53), beta = randu(C, -0.5f, 0.5f, 54);
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(best_isa())) continue;
    set_active_isa(isa);
    std::vector<std::vector<float>> outs[2];
    double ss[2];
    for (int t = 0; t < 2; ++t) {
      auto work = [&] {
        std::vector<float> y(n), m(N * G), r(N * G), gx(n), gg(C), gb(C), e(n), lgx(n), lgg(1024), lgb(1024);
        group_norm_forward(N, C, HW, G, 1e-5f, x.data(), gamma.data(), beta.data(), true, y.data(), m.data(),
                           r.data());
        group_norm_backward(N, C, HW, G, x.data(), gamma.data(), beta.data(), true, m.data(), r.data(), gy.data(),
                            gx.data(), gg.data(), gb.data());
        unary(Unary::GeluErf, n, x.data(), e.data());
        std::vector<float> lm(n / 1024), lr(n / 1024), ly(n);
        layer_norm_forward(n / 1024, 1024, 1e-5f, x.data(), x.data(), nullptr, ly.data(), lm.data(), lr.data());
        layer_norm_backward(n / 1024, 1024, x.data(), nullptr, lm.data(), lr.data(), gy.data(), lgx.data(),
                            lgg.data(), lgb.data());
        ss[t] = sum_squares(n, x.data());
        outs[t] = {y, m, r, gx, gg, gb, e, ly, lgx, lgg, lgb};
      };
      if (t == 0) {
        ThreadPool::global().run_on_all([&](int tid, int) { if (tid == 0) work(); }, 2);
      } else {
        work();
      }
    }
    ++g_checks;
    static const char* names[] = {"gn y", "gn mean", "gn rstd", "gn gx", "gn ggamma", "gn gbeta", "gelu_erf",
                                  "ln y", "ln gx", "ln ggamma", "ln gbeta"};
    if (ss[0] != ss[1]) {
      ++g_failures;
      std::printf("FAIL %s: sum_squares differs between 1 and %d threads\n", isa_name(isa), threads);
    }
    for (size_t k = 0; k < outs[0].size(); ++k)
      if (std::memcmp(outs[0][k].data(), outs[1][k].data(), outs[0][k].size() * sizeof(float)) != 0) {
        ++g_failures;
        std::printf("FAIL %s: %s differs between 1 and %d threads\n", isa_name(isa), names[k], threads);
      }
  }
}

// Max relative error of the vector transcendentals against double precision on a dense grid.
void accuracy_report() {
  struct Fn {
    Unary op;
    double lo, hi;
    double (*f)(double);
  };
  const Fn fns[] = {
      {Unary::Exp, -87.3, 88.7, [](double x) { return std::exp(x); }},
      {Unary::Log, 1e-37, 1e37, [](double x) { return std::log(x); }},
      {Unary::Tanh, -10, 10, [](double x) { return std::tanh(x); }},
      {Unary::Sigmoid, -80, 80, [](double x) { return 1 / (1 + std::exp(-x)); }},
      {Unary::Silu, -80, 80, [](double x) { return x / (1 + std::exp(-x)); }},
      {Unary::Softplus, -80, 30, [](double x) { return x > 20 ? x : std::log1p(std::exp(x)); }},
      {Unary::GeluTanh, -10, 10,
       [](double x) { return x / (1 + std::exp(-2 * 0.7978845608028654 * (x + 0.044715 * x * x * x))); }},
      {Unary::GeluErf, -12, 12, [](double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }},
  };
  const int64_t n = 2000003;
  std::printf("\naccuracy: max relative error vs double (|ref| >= 1e-30), %lld points per range\n",
              static_cast<long long>(n));
  std::printf("%-10s %-18s", "function", "range");
  for (Isa isa : fast_isas()) std::printf(" %12s", isa_name(isa));
  std::printf("\n");
  for (const Fn& fn : fns) {
    std::vector<float> x(n), y(n);
    const bool logscale = fn.op == Unary::Log;
    for (int64_t i = 0; i < n; ++i) {
      const double t = static_cast<double>(i) / (n - 1);
      x[i] = static_cast<float>(logscale ? std::exp(std::log(fn.lo) + t * (std::log(fn.hi) - std::log(fn.lo)))
                                         : fn.lo + t * (fn.hi - fn.lo));
    }
    char range[64];
    std::snprintf(range, sizeof range, "[%g, %g]", fn.lo, fn.hi);
    std::printf("%-10s %-18s", unary_name(fn.op), range);
    for (Isa isa : fast_isas()) {
      set_active_isa(isa);
      unary(fn.op, n, x.data(), y.data());
      double worst = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double r = fn.f(x[i]);
        if (std::fabs(r) < 1e-30 || std::fabs(r) > 3e38) continue;
        worst = std::max(worst, std::fabs(y[i] - r) / std::fabs(r));
      }
      std::printf(" %12.3g", worst);
    }
    std::printf("\n");
  }
}

// ---------------------------------------------------------------- throughput
// Best time over at least `reps` runs and at least ~0.25 s of repetition (the
// minimum filters out preemption by other processes on a shared machine).
template <class F>
double best_seconds(F f, int reps) {
  f();  // warm-up
  double best = 1e30, total = 0;
  for (int r = 0; r < reps || (total < 0.25 && r < 10000); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    best = std::min(best, dt);
    total += dt;
  }
  return best;
}

void throughput(bool quick) {
  const int reps = quick ? 3 : 10;
  std::vector<Isa> isas = {Isa::Scalar};
  for (Isa i : fast_isas()) isas.push_back(i);
  const int threads = ThreadPool::global().num_threads();
  std::printf("\nthroughput GB/s (bytes = arrays read + written once; best of %d), threads=%d\n", reps, threads);
  std::printf("%-44s", "kernel");
  for (Isa isa : isas) std::printf(" %10s", isa_name(isa));
  std::printf("\n");
  auto row = [&](const char* name, double bytes, auto fn) {
    std::printf("%-44s", name);
    for (Isa isa : isas) {
      set_active_isa(isa);
      const double s = best_seconds(fn, reps);
      std::printf(" %10.1f", bytes / s * 1e-9);
    }
    std::printf("\n");
  };
  {
    const int64_t n = 4 << 20;
    std::vector<float> x = randu(n, -5.f, 5.f, 61), y(n), g = randu(n, -1.f, 1.f, 62), gx(n);
    for (Unary op : {Unary::Exp, Unary::Silu, Unary::GeluTanh, Unary::GeluErf, Unary::Tanh}) {
      char name[64];
      std::snprintf(name, sizeof name, "%s 4M", unary_name(op));
      row(name, 8.0 * n, [&] { unary(op, n, x.data(), y.data()); });
    }
    row("silu backward 4M", 12.0 * n, [&] { unary_backward(Unary::Silu, n, x.data(), y.data(), g.data(), gx.data()); });
    row("add 4M", 12.0 * n, [&] { binary(Binary::Add, n, x.data(), 1, g.data(), 1, y.data()); });
    const int64_t s = 64 << 10;  // in cache
    for (Unary op : {Unary::Exp, Unary::Silu, Unary::GeluErf}) {
      char name[64];
      std::snprintf(name, sizeof name, "%s 64K (in cache)", unary_name(op));
      row(name, 8.0 * s, [&] { unary(op, s, x.data(), y.data()); });
    }
  }
  {
    const int64_t N = 16, C = 64, HW = 1024, G = 32, n = N * C * HW;
    std::vector<float> x = randu(n, -1.f, 3.f, 71), y(n), gy = randu(n, -1.f, 1.f, 72), gx(n);
    std::vector<float> gamma = randu(C, 0.5f, 1.5f, 73), beta = randu(C, -0.5f, 0.5f, 74), m(N * G), r(N * G),
                       gg(C), gb(C);
    row("group_norm+silu fwd N16 C64 HW1024 G32", 8.0 * n, [&] {
      group_norm_forward(N, C, HW, G, 1e-5f, x.data(), gamma.data(), beta.data(), true, y.data(), m.data(), r.data());
    });
    row("group_norm fwd N16 C64 HW1024 G32", 8.0 * n, [&] {
      group_norm_forward(N, C, HW, G, 1e-5f, x.data(), gamma.data(), beta.data(), false, y.data(), m.data(), r.data());
    });
    row("group_norm+silu bwd (x,gy -> gx)", 12.0 * n, [&] {
      group_norm_backward(N, C, HW, G, x.data(), gamma.data(), beta.data(), true, m.data(), r.data(), gy.data(),
                          gx.data(), gg.data(), gb.data());
    });
    const int64_t M = 4096, D = 256;
    std::vector<float> lm(M), lr(M);
    row("layer_norm fwd M4096 D256", 8.0 * M * D, [&] {
      layer_norm_forward(M, D, 1e-5f, x.data(), gamma.data(), gamma.data(), y.data(), lm.data(), lr.data());
    });
    row("softmax fwd M4096 D256", 8.0 * M * D, [&] { softmax_forward(M, D, x.data(), y.data(), false); });
  }
  {
    const int64_t n = 7000000;
    std::vector<float> p = randu(n, -1.f, 1.f, 81), g = randu(n, -0.1f, 0.1f, 82), m(n), v(n);
    AdamParams ap{1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, true, 0.1f, 0.001f, 1.f};
    row("adamw 7M params (p,g,m,v r + p,m,v w)", 28.0 * n,
        [&] { adam_step(n, p.data(), g.data(), m.data(), v.data(), ap); });
    row("sum_squares 7M", 4.0 * n, [&] { (void)sum_squares(n, g.data()); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const Isa initial = active_isa();
  std::printf("cpu: %s, best isa %s, threads %d\n", cpu_features().brand.c_str(), isa_name(best_isa()),
              ThreadPool::global().num_threads());
  test_unary();
  test_binary();
  test_group_norm();
  test_layer_norm();
  test_softmax();
  test_optimizers();
  test_determinism();
  std::printf("checks: %d, failures: %d\n", g_checks, g_failures);
  accuracy_report();
  throughput(quick);
  set_active_isa(initial);
  return g_failures ? 1 : 0;
}
