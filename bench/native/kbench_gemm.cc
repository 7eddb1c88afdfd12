// Standalone SGEMM / conv2d kernel check + benchmark.
//  1. Correctness: every available ISA (avx2, avx512) vs the scalar reference at
//     odd shapes, transposed views, alpha/beta/bias, conv stride/pad/dilation/groups;
//     bit-identity of 1 vs 2 threads. Max error relative to max |ref| ≤ 1e-5.
//  2. Timing: SGEMM squares on 1 and 2 threads, skinny shapes, conv 3×3 layers.
// Usage: kbench_gemm [--quick] [--no-check] [--no-bench] [--all-isa] [--conv-only] [--gemm-only]
//                    [--batched-only]
//                    [--shape M N K]... [--linear M N K]...  (--linear: B = Wᵀ view, as the linear op)
#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "kernels/gemm.h"
#include "kernels/gemm_impl.h"

using namespace fd;
using namespace fd::kernels;

namespace {

std::mt19937 rng(12345);

std::vector<float> randv(size_t n) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double mx = 0, md = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    mx = std::max(mx, (double)std::fabs(b[i]));
    const double d = std::fabs((double)a[i] - (double)b[i]);
    if (!(d <= md)) md = d;  // NaN-propagating
  }
  return mx > 0 ? md / mx : md;
}

int failures = 0;
int checks = 0;

void report(const char* what, const std::string& desc, double err) {
  ++checks;
  if (!(err <= 1e-5)) {
    ++failures;
    std::printf("FAIL %-10s %s err=%.3g\n", what, desc.c_str(), err);
  }
}

std::vector<Isa> fast_isas() {
  std::vector<Isa> v;
  if (best_isa() >= Isa::Avx2) v.push_back(Isa::Avx2);
  if (best_isa() >= Isa::Avx512) v.push_back(Isa::Avx512);
  return v;
}

// One sgemm case: A is M×K (transposed storage if ta), B is K×N (transposed if tb).
void check_gemm(int64_t M, int64_t N, int64_t K, bool ta, bool tb, float alpha, float beta, bool brow, bool bcol,
                int64_t pad_ld = 0) {
  const int64_t lda = (ta ? M : K) + pad_ld, ldb = (tb ? K : N) + pad_ld, ldc = N + pad_ld;
  auto a = randv(size_t((ta ? K : M) * lda + 1)), b = randv(size_t((tb ? N : K) * ldb + 1));
  auto c0 = randv(size_t(M * ldc + 1)), br = randv(size_t(M)), bc = randv(size_t(N));
  // Unaligned operands: offset by one float.
  MatView A{a.data() + 1, ta ? 1 : lda, ta ? lda : 1};
  MatView B{b.data() + 1, tb ? 1 : ldb, tb ? ldb : 1};
  if (beta == 0.f)
    for (auto& x : c0) x = NAN;  // beta == 0 must not read C
  std::vector<float> cref = c0;
  set_active_isa(Isa::Scalar);
  GemmEpilogue ep{brow ? br.data() : nullptr, bcol ? bc.data() : nullptr};
  // reference on a shifted copy (same layout)
  std::vector<float> r(c0);
  if (beta == 0.f) std::fill(r.begin(), r.end(), 0.f);
  sgemm(M, N, K, alpha, MatView{a.data() + 1, A.rs, A.cs}, MatView{b.data() + 1, B.rs, B.cs}, beta,
        (beta == 0.f ? r.data() : cref.data()) + 1, ldc, ep);
  if (beta == 0.f) cref = r;
  char desc[200];
  std::snprintf(desc, sizeof desc, "M=%lld N=%lld K=%lld ta=%d tb=%d a=%g b=%g br=%d bc=%d ld+%lld", (long long)M,
                (long long)N, (long long)K, ta, tb, alpha, beta, brow, bcol, (long long)pad_ld);
  for (Isa isa : fast_isas()) {
    set_active_isa(isa);
    std::vector<float> out1, out2;
    for (int th : {1, 2}) {
      ThreadPool::global().resize(th);
      std::vector<float> c = c0;
      sgemm(M, N, K, alpha, A, B, beta, c.data() + 1, ldc, ep);
      // compare only the M×N window (padding columns must be untouched)
      std::vector<float> x, y;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
          const size_t idx = size_t(1 + i * ldc + j);
          if (j < N) {
            x.push_back(c[idx]);
            y.push_back(cref[idx]);
          } else if (std::memcmp(&c[idx], &c0[idx], 4) != 0) {
            x.push_back(1e30f);
            y.push_back(0.f);
          }
        }
      report(isa_name(isa), desc, rel_err(x, y));
      (th == 1 ? out1 : out2) = x;
    }
    if (std::memcmp(out1.data(), out2.data(), out1.size() * 4) != 0) {
      ++failures;
      std::printf("FAIL determinism %s %s\n", isa_name(isa), desc);
    }
  }
}

void check_batched() {
  const int64_t batch = 5, M = 33, N = 17, K = 29;
  auto a = randv(size_t(batch * M * K)), b = randv(size_t(K * N)), c0 = randv(size_t(batch * M * N));
  std::vector<float> cref = c0;
  set_active_isa(Isa::Scalar);
  sgemm_batched(batch, M, N, K, 0.5f, MatView{a.data(), K, 1}, M * K, MatView{b.data(), 1, K}, 0, 0.5f, cref.data(),
                N, M * N);
  for (Isa isa : fast_isas()) {
    set_active_isa(isa);
    for (int th : {1, 2}) {
      ThreadPool::global().resize(th);
      std::vector<float> c = c0;
      sgemm_batched(batch, M, N, K, 0.5f, MatView{a.data(), K, 1}, M * K, MatView{b.data(), 1, K}, 0, 0.5f, c.data(), N,
                    M * N);
      report(isa_name(isa), "batched", rel_err(c, cref));
    }
  }
}

void check_conv(Conv2dShape s, bool bias) {
  const int64_t OH = s.OH(), OW = s.OW();
  auto x = randv(size_t(s.N * s.C * s.H * s.W)), w = randv(size_t(s.OC * (s.C / s.groups) * s.KH * s.KW));
  auto bb = randv(size_t(s.OC)), gy = randv(size_t(s.N * s.OC * OH * OW));
  std::vector<float> y0(size_t(s.N * s.OC * OH * OW)), gx0(x.size()), gw0(w.size()), gb0(size_t(s.OC));
  set_active_isa(Isa::Scalar);
  conv2d_forward(s, x.data(), w.data(), bias ? bb.data() : nullptr, y0.data());
  conv2d_backward_input(s, gy.data(), w.data(), gx0.data());
  conv2d_backward_weight(s, x.data(), gy.data(), gw0.data(), gb0.data());
  char desc[256];
  std::snprintf(desc, sizeof desc, "N%lld C%lld %lldx%lld OC%lld k%lldx%lld s%lld,%lld p%lld,%lld d%lld,%lld g%lld",
                (long long)s.N, (long long)s.C, (long long)s.H, (long long)s.W, (long long)s.OC, (long long)s.KH,
                (long long)s.KW, (long long)s.stride_h, (long long)s.stride_w, (long long)s.pad_h, (long long)s.pad_w,
                (long long)s.dil_h, (long long)s.dil_w, (long long)s.groups);
  for (Isa isa : fast_isas()) {
    set_active_isa(isa);
    std::vector<float> res[2][4];
    for (int th : {1, 2}) {
      ThreadPool::global().resize(th);
      std::vector<float> y(y0.size(), NAN), gx(gx0.size(), NAN), gw(gw0.size(), NAN), gb(gb0.size(), NAN);
      conv2d_forward(s, x.data(), w.data(), bias ? bb.data() : nullptr, y.data());
      conv2d_backward_input(s, gy.data(), w.data(), gx.data());
      conv2d_backward_weight(s, x.data(), gy.data(), gw.data(), gb.data());
      report(isa_name(isa), std::string("fwd ") + desc, rel_err(y, y0));
      report(isa_name(isa), std::string("bwd_in ") + desc, rel_err(gx, gx0));
      report(isa_name(isa), std::string("bwd_w ") + desc, rel_err(gw, gw0));
      report(isa_name(isa), std::string("bwd_b ") + desc, rel_err(gb, gb0));
      res[th - 1][0] = y;
      res[th - 1][1] = gx;
      res[th - 1][2] = gw;
      res[th - 1][3] = gb;
    }
    for (int q = 0; q < 4; ++q)
      if (std::memcmp(res[0][q].data(), res[1][q].data(), res[0][q].size() * 4) != 0) {
        ++failures;
        std::printf("FAIL determinism %s part %d %s\n", isa_name(isa), q, desc);
      }
  }
}

Conv2dShape cs(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t st, int64_t pad,
               int64_t dil, int64_t groups) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.OC = OC, s.KH = KH, s.KW = KW;
  s.stride_h = s.stride_w = st;
  s.pad_h = s.pad_w = pad;
  s.dil_h = s.dil_w = dil;
  s.groups = groups;
  return s;
}

void run_checks(bool quick) {
  const int64_t dims[] = {1, 7, 33, 129};
  for (int64_t M : dims)
    for (int64_t N : dims)
      for (int64_t K : {int64_t(0), int64_t(1), int64_t(7), int64_t(33), int64_t(129)})
        check_gemm(M, N, K, false, false, 1.f, 0.f, false, false);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 1.f, 0.5f}) {
        check_gemm(37, 45, 53, ta, tb, 1.f, beta, false, false);
        check_gemm(29, 70, 300, ta, tb, -0.75f, beta, true, true, 3);
        check_gemm(15, 33, 17, ta, tb, 2.f, beta, true, false, 1);
      }
  check_gemm(300, 530, 700, false, false, 1.f, 0.f, true, true);
  check_gemm(300, 530, 700, true, true, 0.5f, 0.5f, false, true, 5);
  check_gemm(64, 784, 576, false, false, 1.f, 0.f, true, false);
  // several K blocks (the AVX-512 kc is 1024): C accumulated across blocks, both drivers
  check_gemm(20, 70, 2100, true, true, 1.f, 1.f, true, true);
  check_gemm(45, 33, 1030, false, true, 0.5f, 0.f, true, false, 2);
  if (!quick) check_gemm(150, 1100, 1300, false, false, 0.5f, 0.5f, true, true, 3);  // also > mc rows, > nc cols
  if (!quick) check_gemm(260, 4500, 520, false, false, 1.f, 1.f, false, false);
  check_gemm(5, 3, 0, false, false, 1.f, 0.5f, true, true);
  check_gemm(5, 40, 9, false, false, 0.f, 0.5f, true, true);
  check_batched();

  check_conv(cs(2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1), true);
  check_conv(cs(2, 8, 13, 10, 12, 3, 3, 2, 1, 1, 1), true);
  check_conv(cs(1, 6, 12, 12, 9, 3, 3, 1, 2, 2, 1), false);
  check_conv(cs(2, 8, 11, 9, 6, 3, 3, 1, 0, 1, 2), true);
  check_conv(cs(2, 12, 10, 10, 12, 3, 3, 1, 1, 1, 4), true);
  check_conv(cs(3, 16, 8, 8, 20, 1, 1, 1, 0, 1, 1), true);
  check_conv(cs(2, 16, 8, 8, 20, 1, 1, 2, 0, 1, 2), true);
  check_conv(cs(2, 5, 7, 7, 7, 5, 5, 1, 2, 1, 1), false);
  check_conv(cs(2, 4, 15, 15, 8, 4, 4, 2, 1, 1, 1), true);
  check_conv(cs(2, 5, 15, 14, 6, 3, 3, 3, 2, 2, 1), true);
  check_conv(cs(1, 3, 6, 6, 4, 3, 3, 1, 0, 1, 1), false);
  check_conv(cs(2, 35, 16, 17, 40, 3, 3, 1, 1, 1, 1), true);
  check_conv(cs(1, 2, 5, 5, 3, 3, 3, 1, 2, 1, 1), true);  // pad > 1 with tiny image
  check_conv(cs(4, 6, 5, 40, 6, 1, 3, 1, 1, 1, 3), true);  // non-square kernel w/ groups
  if (!quick) {
    check_conv(cs(2, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1), true);
    check_conv(cs(3, 35, 20, 19, 40, 3, 3, 1, 1, 1, 1), true);   // odd batch: threads split inside the GEMM
    check_conv(cs(3, 32, 21, 22, 48, 3, 3, 2, 1, 1, 2), true);   // strided, grouped
    check_conv(cs(1, 200, 9, 9, 180, 3, 3, 1, 1, 1, 1), false);  // M > mc (several row blocks)
  }
  std::printf("checks: %d, failures: %d\n", checks, failures);
}

// CPU time of the calling thread: on a shared machine this excludes time the
// thread was preempted, so single-thread numbers stay meaningful under load.
double thread_cpu_s() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
double g_best_cpu = 0;  // best thread-CPU time of the last time_it call

template <typename F>
double time_it(F f, double min_s = 0.25) {
  f();  // warm-up
  double best = 1e30;
  g_best_cpu = 1e30;
  auto t_end = std::chrono::steady_clock::now() + std::chrono::duration<double>(min_s);
  int reps = 0;
  do {
    const double c0 = thread_cpu_s();
    auto t0 = std::chrono::steady_clock::now();
    f();
    auto t1 = std::chrono::steady_clock::now();
    g_best_cpu = std::min(g_best_cpu, thread_cpu_s() - c0);
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    ++reps;
  } while (std::chrono::steady_clock::now() < t_end || reps < 3);
  return best;
}

void bench_gemm(int64_t M, int64_t N, int64_t K, int threads, bool ta = false, bool tb = false) {
  ThreadPool::global().resize(threads);
  auto a = randv(size_t(M * K)), b = randv(size_t(K * N));
  std::vector<float> c(size_t(M * N));
  MatView A = ta ? MatView{a.data(), 1, M} : MatView{a.data(), K, 1};
  MatView B = tb ? MatView{b.data(), 1, K} : MatView{b.data(), N, 1};
  double t = time_it([&] { sgemm(M, N, K, 1.f, A, B, 0.f, c.data(), N); });
  double gf = 2.0 * M * N * K / t * 1e-9;
  double peak = threads == 1 ? 116.0 : 229.0;
  std::printf("sgemm %-6s M=%5lld N=%5lld K=%5lld %s%s thr=%d  %8.3f ms  %7.1f GFLOP/s  %5.1f%% peak",
              isa_name(active_isa()), (long long)M, (long long)N, (long long)K, ta ? "At" : "A ", tb ? "Bt" : "B ",
              threads, t * 1e3, gf, gf / peak * 100);
  if (threads == 1) {
    const double gc = 2.0 * M * N * K / g_best_cpu * 1e-9;
    std::printf("  | thread-cpu %7.1f GFLOP/s %5.1f%%", gc, gc / peak * 100);
  }
  std::printf("\n");
}

void bench_batched(int threads) {
  ThreadPool::global().resize(threads);
  const int64_t batch = 64, M = 256, N = 256, K = 32;
  auto a = randv(size_t(batch * M * K)), b = randv(size_t(batch * K * N));
  std::vector<float> c(size_t(batch * M * N));
  // q·kᵀ: A [M,K] row-major, B = kᵀ (k stored [N,K])
  double t = time_it([&] {
    sgemm_batched(batch, M, N, K, 1.f, MatView{a.data(), K, 1}, M * K, MatView{b.data(), 1, K}, N * K, 0.f, c.data(),
                  N, M * N);
  });
  double gf = 2.0 * batch * M * N * K / t * 1e-9;
  const double c1 = g_best_cpu;
  std::printf("batched qk^T [64 x 256x32 . 32x256] thr=%d  %8.3f ms  %7.1f GFLOP/s", threads, t * 1e3, gf);
  if (threads == 1) std::printf("  | thread-cpu %7.1f GFLOP/s", 2.0 * batch * M * N * K / c1 * 1e-9);
  std::printf("\n");
  // p·v: [256x256]·[256x32]
  double t2 = time_it([&] {
    sgemm_batched(batch, M, K, N, 1.f, MatView{c.data(), N, 1}, M * N, MatView{b.data(), K, 1}, N * K, 0.f, a.data(),
                  K, M * K);
  });
  gf = 2.0 * batch * M * N * K / t2 * 1e-9;
  std::printf("batched p.v  [64 x 256x256 . 256x32] thr=%d  %8.3f ms  %7.1f GFLOP/s", threads, t2 * 1e3, gf);
  if (threads == 1) std::printf("  | thread-cpu %7.1f GFLOP/s", 2.0 * batch * M * N * K / g_best_cpu * 1e-9);
  std::printf("\n");
}

void bench_conv(int64_t C, int64_t HW, int threads) {
  ThreadPool::global().resize(threads);
  Conv2dShape s = cs(16, C, HW, HW, C, 3, 3, 1, 1, 1, 1);
  auto x = randv(size_t(s.N * s.C * s.H * s.W)), w = randv(size_t(s.OC * s.C * 9)), bb = randv(size_t(s.OC));
  auto gy = randv(size_t(s.N * s.OC * s.OH() * s.OW()));
  std::vector<float> y(gy.size()), gx(x.size()), gw(w.size()), gb(size_t(s.OC));
  const double flops = 2.0 * s.N * s.OC * s.OH() * s.OW() * s.C * 9;
  double tf = time_it([&] { conv2d_forward(s, x.data(), w.data(), bb.data(), y.data()); });
  const double cf = g_best_cpu;
  double ti = time_it([&] { conv2d_backward_input(s, gy.data(), w.data(), gx.data()); });
  const double ci = g_best_cpu;
  double tw = time_it([&] { conv2d_backward_weight(s, x.data(), gy.data(), gw.data(), gb.data()); });
  const double cw = g_best_cpu;
  double peak = threads == 1 ? 116.0 : 229.0;
  std::printf("conv3x3 %-6s N=16 %3lld->%3lld %2lldx%2lld thr=%d  fwd %7.2f ms %6.1f GF/s (%4.1f%%) | bwd_in %7.2f ms %6.1f GF/s (%4.1f%%) | bwd_w %7.2f ms %6.1f GF/s (%4.1f%%)\n",
              isa_name(active_isa()), (long long)C, (long long)C, (long long)HW, (long long)HW, threads, tf * 1e3,
              flops / tf * 1e-9, flops / tf * 1e-9 / peak * 100, ti * 1e3, flops / ti * 1e-9,
              flops / ti * 1e-9 / peak * 100, tw * 1e3, flops / tw * 1e-9, flops / tw * 1e-9 / peak * 100);
  if (threads == 1)
    std::printf("        thread-cpu:                        fwd %7.2f ms %6.1f GF/s (%4.1f%%) | bwd_in %7.2f ms %6.1f GF/s (%4.1f%%) | bwd_w %7.2f ms %6.1f GF/s (%4.1f%%)\n",
                cf * 1e3, flops / cf * 1e-9, flops / cf * 1e-9 / peak * 100, ci * 1e3, flops / ci * 1e-9,
                flops / ci * 1e-9 / peak * 100, cw * 1e3, flops / cw * 1e-9, flops / cw * 1e-9 / peak * 100);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, check = true, bench = true, all_isa = false, conv_only = false, gemm_only = false,
       batched_only = false;
  std::vector<int64_t> shapes;  // --shape / --linear M N K (repeatable): 1-thread SGEMM at these shapes only
  std::vector<bool> linear;     // per shape: B transposed (the linear op's y = x·Wᵀ)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--shape" || a == "--linear") && i + 3 < argc) {
      for (int q = 1; q <= 3; ++q) shapes.push_back(std::stoll(argv[i + q]));
      linear.push_back(a == "--linear");
      i += 3;
      continue;
    }
    if (a == "--gemm-only") gemm_only = true;  // 1-thread SGEMM squares + skinny shapes only
    if (a == "--batched-only") batched_only = true;
    if (a == "--quick") quick = true;
    if (a == "--no-check") check = false;
    if (a == "--no-bench") bench = false;
    if (a == "--all-isa") all_isa = true;
    if (a == "--conv-only") conv_only = true;  // 1-thread conv layers only
  }
  std::printf("cpu: %s, best isa %s\n", cpu_features().brand.c_str(), isa_name(best_isa()));
  if (check) run_checks(quick);
  if (bench) {
    std::vector<Isa> isas{best_isa()};
    if (all_isa) isas = fast_isas();
    for (Isa isa : isas) {
      set_active_isa(isa);
      if (!shapes.empty()) {
        for (size_t q = 0; q + 2 < shapes.size(); q += 3)
          bench_gemm(shapes[q], shapes[q + 1], shapes[q + 2], 1, false, linear[q / 3]);
        continue;
      }
      if (batched_only) {
        bench_batched(1);
        continue;
      }
      if (gemm_only) {
        for (int64_t n : {256, 512, 1024, 2048}) bench_gemm(n, n, n, 1);
        bench_gemm(64, 784, 576, 1);
        bench_gemm(16, 1024, 1024, 1);
        bench_gemm(64, 512, 512, 1);
        bench_gemm(256, 1024, 1024, 1);
        bench_gemm(256, 128, 128, 1);
        continue;
      }
      if (conv_only) {
        bench_conv(64, 32, 1);
        bench_conv(64, 28, 1);
        bench_conv(128, 32, 1);
        bench_conv(128, 28, 1);
        continue;
      }
      for (int th : {1, 2})
        for (int64_t n : {256, 512, 1024, 2048}) bench_gemm(n, n, n, th);
      bench_gemm(1024, 1024, 1024, 1, true, false);
      bench_gemm(1024, 1024, 1024, 1, false, true);
      bench_gemm(64, 784, 576, 1);
      for (int64_t m : {16, 64, 256})
        for (int64_t kn : {128, 512, 1024}) bench_gemm(m, kn, kn, 1);
      bench_gemm(256, 1024, 1024, 2);
      bench_batched(1);
      bench_batched(2);
      for (int th : {1, 2}) {
        bench_conv(64, 32, th);
        bench_conv(64, 28, th);
        bench_conv(128, 32, th);
        bench_conv(128, 28, th);
      }
    }
  }
  return failures ? 1 : 0;
}
