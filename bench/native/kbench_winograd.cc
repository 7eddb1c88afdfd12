// 3×3 stride-1 pad-1 conv forward: direct implicit GEMM vs Winograd F(2×2, 3×3)
// (kernels/winograd.h; each forced with set_conv_algorithm) on the UNet bench shapes,
// 1 and 2 threads, median of runs.
// Usage: kbench_winograd [--chunk FLOATS]... [--reps N] [--shape N C OC H]...
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/precision.h"
#include "core/threadpool.h"
#include "kernels/gemm.h"
#include "kernels/winograd.h"

using namespace fd;
using namespace fd::kernels;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <typename F>
double median_ms(int reps, const F& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    f();
    t.push_back((now() - t0) * 1e3);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  struct Shape { int64_t N, C, OC, H; };
  std::vector<Shape> shapes;
  std::vector<int64_t> chunks;
  int reps = 15;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--chunk") && i + 1 < argc) chunks.push_back(std::atoll(argv[++i]));
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--shape") && i + 4 < argc) {
      Shape s{std::atoll(argv[i + 1]), std::atoll(argv[i + 2]), std::atoll(argv[i + 3]), std::atoll(argv[i + 4])};
      shapes.push_back(s);
      i += 4;
    }
  }
  if (argc > 1 && !std::strcmp(argv[1], "--phases")) {
    // One chunk of T tiles of a C→OC conv on an H×H map: time of each phase.
    const int64_t C = std::atoll(argv[2]), OC = std::atoll(argv[3]), H = std::atoll(argv[4]), N = std::atoll(argv[5]);
    const int64_t TH = (H + 1) / 2, TW = TH, rows = N * TH, T = rows * TW, P = OC * C;
    const wino::Kernels* wk = active_isa() == Isa::Avx512 ? wino::avx512::kernels() : wino::avx2::kernels();
    const impl::KernelSet* ks = impl::active_kernels();
    const int64_t KSU = wino::kstride(P), KSV = wino::kstride(C * T), KSM = wino::kstride(OC * T);
    std::vector<float> x(N * C * H * H, 0.5f), w(P * 9, 0.1f), U(16 * KSU), V(16 * KSV), M(16 * KSM),
        y(N * OC * H * H), tmp(8 * (TW + 16) + 64);
    const double tw_ = median_ms(reps, [&] { wk->weight(w.data(), P, 0, P, KSU, U.data()); });
    const double ti = median_ms(reps, [&] { wk->input(x.data(), C, H, H, 1, TH, TW, 0, rows, 0, C, T, KSV, V.data(), tmp.data()); });
    const double tg = median_ms(reps, [&] {
      for (int k = 0; k < 16; ++k)
        impl::gemm_block(*ks, 0, OC, 0, T, C, 1.f, impl::ASource{U.data() + k * KSU, C, 1},
                         impl::BSource{0, V.data() + k * KSV, T, 1, nullptr, nullptr}, 0.f, M.data() + k * KSM, T,
                         nullptr, nullptr);
    });
    const double to = median_ms(reps, [&] { wk->output(M.data(), OC, H, H, TH, TW, 0, rows, 0, OC, T, KSM, nullptr, y.data(), tmp.data()); });
    const double gf = 16.0 * 2 * OC * C * T * 1e-9;
    std::printf("C%lld OC%lld H%lld N%lld T=%lld: weight %.3f input %.3f gemm %.3f (%.1f GF/s) output %.3f ms\n",
                (long long)C, (long long)OC, (long long)H, (long long)N, (long long)T, tw_, ti, tg, gf / tg * 1e3, to);
    return 0;
  }
  if (shapes.empty())
    shapes = {{1, 64, 64, 28},  {1, 128, 128, 14}, {1, 128, 128, 7},  {1, 32, 32, 28},  {1, 16, 16, 28},
              {2, 64, 64, 28},  {2, 128, 128, 14}, {4, 128, 128, 14}, {16, 64, 64, 28}, {16, 128, 128, 14},
              {16, 128, 128, 7}};
  if (chunks.empty()) chunks.push_back(0);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::printf("isa %s\n", isa_name(active_isa()));
  for (const Shape& sh : shapes) {
    Conv2dShape s;
    s.N = sh.N, s.C = sh.C, s.H = sh.H, s.W = sh.H, s.OC = sh.OC, s.KH = 3, s.KW = 3, s.pad_h = 1, s.pad_w = 1;
    std::vector<float> x(s.N * s.C * s.H * s.W), w(s.OC * s.C * 9), b(s.OC), y(s.N * s.OC * s.H * s.W), y2(y.size());
    for (auto& v : x) v = d(rng);
    for (auto& v : w) v = d(rng) * 0.1f;
    for (auto& v : b) v = d(rng);
    const double gf = 2.0 * s.N * s.OC * s.C * 9 * s.H * s.W * 1e-9;
    for (int th : {1, 2}) {
      ThreadPool::global().resize(th);
      set_conv_algorithm(ConvAlgorithm::Direct);
      const double td = median_ms(reps, [&] { conv2d_forward(s, x.data(), w.data(), b.data(), y.data()); });
      std::printf("N%-3lld C%-4lld OC%-4lld %3lldx%-3lld %dT direct %8.3f ms (%5.1f GF/s)", (long long)s.N,
                  (long long)s.C, (long long)s.OC, (long long)s.H, (long long)s.W, th, td, gf / td * 1e3);
      for (int64_t c : chunks) {
        set_conv_algorithm(ConvAlgorithm::Winograd);
        wino::tune(0, c);
        const double tw = median_ms(reps, [&] { conv2d_forward(s, x.data(), w.data(), b.data(), y2.data()); });
        double md = 0, mx = 0;
        for (size_t i = 0; i < y.size(); ++i) {
          md = std::max(md, (double)std::fabs(y[i] - y2[i]));
          mx = std::max(mx, (double)std::fabs(y[i]));
        }
        std::printf(" | wino[%lld] %8.3f ms x%.2f err %.1e", (long long)c, tw, td / tw, md / mx);
      }
      std::printf("\n");
    }
  }
  return 0;
}
