// Attention kernel check + benchmark. For every SIMD ISA this CPU supports:
//  1. correctness against the scalar reference (fd::kernels::ref) on random
//     inputs with odd sizes, Nq != Nk, Dv != D, forward and all three grads;
//     large-score (±100) inputs; bit-identical results for 1 vs 2 threads;
//  2. timing of forward and forward+backward at a few shapes, 1 and 2 threads.
// Usage: kbench_attention [--no-bench] [--no-check]
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "kernels/attention.h"
#include "kernels/attention_impl.h"

using fd::kernels::AttentionShape;

namespace {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  float normal() {
    const double u1 = uniform() + 1e-300, u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

void fill(std::vector<float>& x, Rng& r, float mul) {
  for (auto& e : x) e = r.normal() * mul;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& ref) {
  double maxref = 0, maxdiff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    maxref = std::fmax(maxref, std::fabs(ref[i]));
    const double d = std::fabs(double(got[i]) - double(ref[i]));
    if (!(d <= maxdiff)) maxdiff = std::isnan(d) ? INFINITY : d;
  }
  return maxref > 0 ? maxdiff / maxref : maxdiff;
}

struct Case {
  AttentionShape s;
  std::vector<float> q, k, v, go;
};

Case make_case(int64_t B, int64_t H, int64_t Nq, int64_t Nk, int64_t D, int64_t Dv, uint64_t seed, float mul) {
  Case c;
  c.s = AttentionShape{B, H, Nq, Nk, D, Dv, static_cast<float>(1.0 / std::sqrt(double(D)))};
  Rng r(seed);
  c.q.resize(B * H * Nq * D);
  c.k.resize(B * H * Nk * D);
  c.v.resize(B * H * Nk * Dv);
  c.go.resize(B * H * Nq * Dv);
  fill(c.q, r, mul);
  fill(c.k, r, mul);
  fill(c.v, r, 1.f);
  fill(c.go, r, 1.f);
  return c;
}

struct Result {
  std::vector<float> o, lse, gq, gk, gv;
};

Result run(const Case& c, bool ref) {
  const auto& s = c.s;
  Result r;
  r.o.assign(s.B * s.H * s.Nq * s.Dv, NAN);
  r.lse.assign(s.B * s.H * s.Nq, NAN);
  r.gq.assign(c.q.size(), NAN);
  r.gk.assign(c.k.size(), NAN);
  r.gv.assign(c.v.size(), NAN);
  if (ref) {
    fd::kernels::ref::attention_forward(s, c.q.data(), c.k.data(), c.v.data(), r.o.data(), r.lse.data());
    fd::kernels::ref::attention_backward(s, c.q.data(), c.k.data(), c.v.data(), r.o.data(), r.lse.data(),
                                         c.go.data(), r.gq.data(), r.gk.data(), r.gv.data());
  } else {
    fd::kernels::attention_forward(s, c.q.data(), c.k.data(), c.v.data(), r.o.data(), r.lse.data());
    fd::kernels::attention_backward(s, c.q.data(), c.k.data(), c.v.data(), r.o.data(), r.lse.data(), c.go.data(),
                                    r.gq.data(), r.gk.data(), r.gv.data());
  }
  return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Returns the number of failures.
int check_isa(fd::Isa isa) {
  fd::set_active_isa(isa);
  const int64_t Ns[] = {1, 7, 33, 65, 129, 256};
  const int64_t Ds[] = {8, 16, 32, 64, 40};
  int fails = 0, cases = 0;
  double worst_f = 0, worst_g = 0;
  uint64_t seed = 1;
  for (int a = 0; a < 6; ++a)
    for (int b = 0; b < 6; ++b) {
      const int64_t Nq = Ns[a], Nk = Ns[b];
      const int64_t D = Ds[(a + 2 * b) % 5], Dv = Ds[(a + 2 * b + 2) % 5];
      const Case c = make_case(2, 3, Nq, Nk, D, Dv, seed++, 1.f);
      const Result want = run(c, true), got = run(c, false);
      const double ef = std::fmax(rel_err(got.o, want.o), rel_err(got.lse, want.lse));
      const double eg = std::fmax(rel_err(got.gq, want.gq), std::fmax(rel_err(got.gk, want.gk), rel_err(got.gv, want.gv)));
      worst_f = std::fmax(worst_f, ef);
      worst_g = std::fmax(worst_g, eg);
      ++cases;
      if (!(ef <= 1e-5) || !(eg <= 1e-4)) {
        ++fails;
        std::printf("  FAIL %s Nq=%lld Nk=%lld D=%lld Dv=%lld: fwd %.3g grads %.3g (o %.3g lse %.3g gq %.3g gk %.3g gv %.3g)\n",
                    fd::isa_name(isa), (long long)Nq, (long long)Nk, (long long)D, (long long)Dv, ef, eg,
                    rel_err(got.o, want.o), rel_err(got.lse, want.lse), rel_err(got.gq, want.gq),
                    rel_err(got.gk, want.gk), rel_err(got.gv, want.gv));
      }
    }
  std::printf("%-7s random: %d/%d cases ok, worst rel err fwd %.2e (tol 1e-5), grads %.2e (tol 1e-4)\n",
              fd::isa_name(isa), cases - fails, cases, worst_f, worst_g);

  // Large scores (|s| up to ~100+): must stay finite and accurate (float rounding
  // of a score of 100 alone is ~4e-6 relative, so the tolerance here is looser).
  {
    const Case c = make_case(1, 2, 70, 45, 16, 24, 777, 6.f);
    const Result want = run(c, true), got = run(c, false);
    double maxs = 0;
    for (float x : want.lse) maxs = std::fmax(maxs, std::fabs(x));
    const double ef = std::fmax(rel_err(got.o, want.o), rel_err(got.lse, want.lse));
    const double eg = std::fmax(rel_err(got.gq, want.gq), std::fmax(rel_err(got.gk, want.gk), rel_err(got.gv, want.gv)));
    const bool ok = ef <= 1e-4 && eg <= 1e-3;
    fails += !ok;
    std::printf("%-7s large scores (max |lse| %.0f): fwd %.2e grads %.2e %s\n", fd::isa_name(isa), maxs, ef, eg,
                ok ? "ok" : "FAIL");
  }

  // Thread-count independence: bit-identical results with 1 and 2 threads.
  {
    const Case c = make_case(3, 2, 100, 130, 40, 24, 4242, 1.f);
    auto& pool = fd::ThreadPool::global();
    const int saved = pool.num_threads();
    pool.resize(1);
    const Result r1 = run(c, false);
    pool.resize(2);
    const Result r2 = run(c, false);
    pool.resize(saved);
    const bool ok = same_bits(r1.o, r2.o) && same_bits(r1.lse, r2.lse) && same_bits(r1.gq, r2.gq) &&
                    same_bits(r1.gk, r2.gk) && same_bits(r1.gv, r2.gv);
    fails += !ok;
    std::printf("%-7s 1 vs 2 threads bit-identical: %s\n", fd::isa_name(isa), ok ? "ok" : "FAIL");
  }
  return fails;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best-of-5 batches of seconds per call.
template <typename F>
double time_it(const F& f) {
  f();
  double t0 = now_s();
  int reps = 0;
  while (now_s() - t0 < 0.05 || reps < 2) {
    f();
    ++reps;
  }
  const int per = reps;
  double best = 1e30;
  for (int b = 0; b < 5; ++b) {
    t0 = now_s();
    for (int i = 0; i < per; ++i) f();
    best = std::fmin(best, (now_s() - t0) / per);
  }
  return best;
}

void bench(const std::vector<fd::Isa>& isas) {
  struct S {
    int64_t B, H, N, D;
  };
  const S shapes[] = {{16, 4, 256, 32}, {16, 2, 196, 64}, {16, 4, 1024, 64}};
  const double peak[3] = {0, 116.0, 229.0};
  std::printf("\n%-7s %-22s %3s %12s %8s %7s %12s %8s %7s\n", "isa", "shape (B,H,N,D)", "thr", "fwd ms", "GFLOP/s",
              "%peak", "fwd+bwd ms", "GFLOP/s", "%peak");
  for (fd::Isa isa : isas) {
    fd::set_active_isa(isa);
    for (const S& sh : shapes) {
      const Case c = make_case(sh.B, sh.H, sh.N, sh.N, sh.D, sh.D, 99, 1.f);
      const auto& s = c.s;
      std::vector<float> o(s.B * s.H * s.Nq * s.Dv), lse(s.B * s.H * s.Nq), gq(c.q.size()), gk(c.k.size()),
          gv(c.v.size());
      const double F = 4.0 * sh.B * sh.H * sh.N * sh.N * sh.D;
      for (int thr = 1; thr <= 2; ++thr) {
        fd::ThreadPool::global().resize(thr);
        const double tf = time_it([&] {
          fd::kernels::attention_forward(s, c.q.data(), c.k.data(), c.v.data(), o.data(), lse.data());
        });
        const double tfb = time_it([&] {
          fd::kernels::attention_forward(s, c.q.data(), c.k.data(), c.v.data(), o.data(), lse.data());
          fd::kernels::attention_backward(s, c.q.data(), c.k.data(), c.v.data(), o.data(), lse.data(), c.go.data(),
                                          gq.data(), gk.data(), gv.data());
        });
        const double gf = F / tf * 1e-9, gfb = 3.5 * F / tfb * 1e-9;
        char name[64];
        std::snprintf(name, sizeof name, "%lld,%lld,%lld,%lld", (long long)sh.B, (long long)sh.H, (long long)sh.N,
                      (long long)sh.D);
        std::printf("%-7s %-22s %3d %12.3f %8.1f %6.1f%% %12.3f %8.1f %6.1f%%\n", fd::isa_name(isa), name, thr,
                    tf * 1e3, gf, 100 * gf / peak[thr], tfb * 1e3, gfb, 100 * gfb / peak[thr]);
        std::fflush(stdout);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool do_bench = true, do_check = true;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-bench") do_bench = false;
    if (std::string(argv[i]) == "--no-check") do_check = false;
  }
  const auto& f = fd::cpu_features();
  std::printf("cpu: %s\n", f.brand.c_str());
  std::vector<fd::Isa> isas;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma) isas.push_back(fd::Isa::Avx512);
  if (f.avx2 && f.fma) isas.push_back(fd::Isa::Avx2);
  int fails = 0;
  if (do_check) {
    for (fd::Isa isa : isas) fails += check_isa(isa);
    // The scalar dispatch path (reference, threaded per head) must match the oracle exactly.
    fd::set_active_isa(fd::Isa::Scalar);
    const Case c = make_case(2, 2, 9, 13, 8, 5, 5, 1.f);
    const Result a = run(c, true), b = run(c, false);
    const bool ok = same_bits(a.o, b.o) && same_bits(a.gq, b.gq) && same_bits(a.gk, b.gk) && same_bits(a.gv, b.gv);
    fails += !ok;
    std::printf("scalar  dispatch == reference: %s\n", ok ? "ok" : "FAIL");
    fd::set_active_isa(fd::best_isa());
    std::printf("%s\n", fails ? "CHECK FAILED" : "all checks passed");
  }
  if (do_bench) bench(isas);
  return fails ? 1 : 0;
}
