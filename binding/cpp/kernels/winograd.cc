// Winograd F(2×2, 3×3) driver (x86-64-v2 baseline): see kernels/winograd.h.
// Per call: U (16 × OC × IC) from the weights, threads over (oc, ic) pairs. Then per
// chunk of tiles: input transform → 16 GEMMs M_k = U_k · V_k (impl::gemm_block,
// K = IC never split) → output transform. Many chunks: each thread runs whole
// chunks with its own V / M scratch. Few chunks: chunks in turn, each phase split
// over threads (IC rows, the 16 GEMMs, OC rows). The chunk size depends only on the
// shape, so the arithmetic per output element is the same for any thread count.
#include "kernels/winograd.h"
#include "kernels/scratch.h"

#include <atomic>
#include <cstdlib>

#include "core/cpu.h"
#include "core/threadpool.h"

namespace fd::kernels::wino {
namespace {

thread_local ScratchBuf tl_u, tl_vm;
// Below ~32 tiles (e.g. one 7×7 map) the 16 narrow GEMMs lose to the direct conv.
constexpr int64_t kMinTiles = 32;
constexpr int64_t kMaxTW = 1024;  // transform scratch on the stack: 8·(TW + 16) floats

const Kernels* active() {
  switch (active_isa()) {
    case Isa::Avx512: return avx512::kernels();
    case Isa::Avx2: return avx2::kernels();
    default: return nullptr;
  }
}

int64_t env_int(const char* name, int64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : dflt;
}

// Tiles per chunk: V + M = 16·(IC + OC)·T floats ≈ 512 Ki floats (2 MiB: measured
// best on Zen 4 among 128 Ki / 512 Ki / 2 Mi: fewer repacks of U, V + M still in L2 + L3).
std::atomic<int64_t> g_min_ch{env_int("FASTDIFF_WINO_MIN_CH", 32)};
std::atomic<int64_t> g_chunk_floats{env_int("FASTDIFF_WINO_CHUNK_FLOATS", 512 * 1024)};

int64_t chunk_rows(int64_t IC, int64_t OC, int64_t TW, int64_t rows_total) {
  const int64_t target_floats = g_chunk_floats.load();
  int64_t T = target_floats / (16 * (IC + OC));
  if (T < 32) T = 32;
  int64_t rows = (T + TW / 2) / TW;
  if (rows < 1) rows = 1;
  if (rows > rows_total) rows = rows_total;
  return rows;
}

}  // namespace

void tune(int64_t min_channels, int64_t chunk_floats) {
  if (min_channels != 0) g_min_ch.store(min_channels);
  if (chunk_floats > 0) g_chunk_floats.store(chunk_floats);
}

int64_t kstride(int64_t n) {
  int64_t s = (n + 15) / 16 * 16;
  if ((s / 16) % 2 == 0) s += 16;
  return s;
}

bool applicable(const Conv2dShape& s) {
  const int64_t min_ch = g_min_ch.load();
  if (min_ch < 0) return false;
  return s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 && s.dil_h == 1 && s.dil_w == 1 &&
         s.groups == 1 && s.pad_h == s.pad_w && (s.pad_h == 0 || s.pad_h == 1) && s.C >= min_ch &&
         s.OC >= min_ch && s.OH() > 0 && s.OW() > 0 && s.N * ((s.OH() + 1) / 2) * ((s.OW() + 1) / 2) >= kMinTiles &&
         (s.OW() + 1) / 2 <= kMaxTW && active() != nullptr;
}

bool conv3x3_forward(const impl::KernelSet& ks, const Conv2dShape& s, const float* x, const float* w,
                     const float* bias, float* y) {
  const Kernels* wk = active();
  if (!wk) return false;
  const int64_t IC = s.C, OC = s.OC, H = s.H, W = s.W, pad = s.pad_h, OH = s.OH(), OW = s.OW();
  const int64_t TH = (OH + 1) / 2, TW = (OW + 1) / 2, rows_total = s.N * TH;
  const int64_t rows = chunk_rows(IC, OC, TW, rows_total), nchunks = (rows_total + rows - 1) / rows;
  const int64_t Tmax = rows * TW, P = OC * IC;
  const int64_t KSU = kstride(P), KSV = kstride(IC * Tmax), KSM = kstride(OC * Tmax);
  const size_t per_chunk = static_cast<size_t>(16 * (KSV + KSM));

  float* U = tl_u.get(static_cast<size_t>(16 * KSU));
  if (!U) return false;
  ThreadPool& pool = ThreadPool::global();
  const int nt = ThreadPool::in_parallel() ? 1 : pool.num_threads();
  // Weight transform, split over (oc, ic) pairs.
  if (nt > 1 && P >= 4096)
    pool.parallel_for(P, 1024, [&](int64_t b, int64_t e) { wk->weight(w, P, b, e, KSU, U); });
  else
    wk->weight(w, P, 0, P, KSU, U);

  // The 16 GEMMs of one chunk for k ∈ [k0, k1).
  auto gemms = [&](const float* V, float* Mb, int64_t T, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const impl::ASource a{U + k * KSU, IC, 1};
      const impl::BSource b{0, V + k * KSV, T, 1, nullptr, nullptr};
      impl::gemm_block(ks, 0, OC, 0, T, IC, 1.f, a, b, 0.f, Mb + k * KSM, T, nullptr, nullptr);
    }
  };
  auto chunk_range = [&](int64_t ci, int64_t* r0, int64_t* r1) {
    *r0 = ci * rows;
    *r1 = *r0 + rows < rows_total ? *r0 + rows : rows_total;
  };

  const bool by_chunk = nt > 1 && (nchunks % nt == 0 || nchunks >= 4 * nt);
  if (nt <= 1 || by_chunk) {
    std::atomic<bool> ok{true};
    auto run_chunks = [&](int64_t cb, int64_t ce) {
      alignas(64) float tmp[8 * (kMaxTW + 16)];
      float* vm = tl_vm.get(per_chunk);
      if (!vm) {
        ok.store(false);
        return;
      }
      for (int64_t ci = cb; ci < ce; ++ci) {
        int64_t r0, r1;
        chunk_range(ci, &r0, &r1);
        const int64_t T = (r1 - r0) * TW;
        float* V = vm;
        float* Mb = vm + 16 * KSV;
        wk->input(x, IC, H, W, pad, TH, TW, r0, r1, 0, IC, T, KSV, V, tmp);
        gemms(V, Mb, T, 0, 16);
        wk->output(Mb, OC, OH, OW, TH, TW, r0, r1, 0, OC, T, KSM, bias, y, tmp);
      }
    };
    if (by_chunk)
      pool.parallel_for(nchunks, 1, run_chunks);
    else
      run_chunks(0, nchunks);
    return ok.load();
  }
  // Few chunks: one at a time, every phase split over the threads.
  float* vm = tl_vm.get(per_chunk);
  if (!vm) return false;
  for (int64_t ci = 0; ci < nchunks; ++ci) {
    int64_t r0, r1;
    chunk_range(ci, &r0, &r1);
    const int64_t T = (r1 - r0) * TW;
    float* V = vm;
    float* Mb = vm + 16 * KSV;
    pool.parallel_for(IC, 1, [&](int64_t b, int64_t e) {
      alignas(64) float tmp[8 * (kMaxTW + 16)];
      wk->input(x, IC, H, W, pad, TH, TW, r0, r1, b, e, T, KSV, V, tmp);
    });
    pool.parallel_for(16, 1, [&](int64_t b, int64_t e) { gemms(V, Mb, T, b, e); });
    pool.parallel_for(OC, 1, [&](int64_t b, int64_t e) {
      alignas(64) float tmp[8 * (kMaxTW + 16)];
      wk->output(Mb, OC, OH, OW, TH, TW, r0, r1, b, e, T, KSM, bias, y, tmp);
    });
  }
  return true;
}

}  // namespace fd::kernels::wino
