// Winograd F(2×2, 3×3) / F(4×4, 3×3) driver (x86-64-v2 baseline): see kernels/winograd.h.
// Per call and thread: U (α² × OC × IC) from the weights, unless U is kept packed. Then per
// chunk of tiles: input transform → α² GEMMs M_k = U_k · V_k (impl::gemm_block,
// K = IC never split) → output transform. Each thread runs whole chunks with its own
// V / M scratch; with fewer chunks than threads (e.g. one image), the tile rows are
// cut into more, smaller chunks. Data written by one core and read by another is
// what costs here: splitting the phases of one chunk over the threads (V and M change
// cores twice) or U's pairs (U once) made 2 threads slower than 1 on a Zen 5 VM
// (64→64 channels at 28×28: 260 µs on 1 thread, 350 µs on 2). The exception is a map
// with too few tiles to split (one 14×14 or 7×7 image), where the threads share the
// output channels: there each transforming every input channel itself cost more than
// reading the other's half of one shared V (2 threads, 13–20% faster per conv).
// Tiles are independent and the GEMM reduction is whole, so the chunking never changes
// the arithmetic of an output element.
#include "kernels/winograd.h"
#include "kernels/scratch.h"

#include <atomic>
#include <cstdlib>

#include "core/cpu.h"
#include "core/precision.h"
#include "core/threadpool.h"

namespace fd::kernels::wino {
namespace {

thread_local ScratchBuf tl_u, tl_vm, tl_m, tl_tmp;
// "auto" takes Winograd from 256 tiles of 2×2 outputs (more than one 28×28 image).
// Measured on a 2-vCPU Zen 5 VM (512-bit FMAs at full width, so the transforms' memory
// traffic and each thread's weight transform weigh more than on Zen 4): on one image
// Winograd gains ≤ 1.25× on 1 thread and loses on 2 (UNet 64→64 at 28×28: 230 vs 287 µs,
// 178 vs 148 µs; 128→128 at 14×14: 292 vs 314, 198 vs 171); from ~400 tiles it wins
// 1.3–1.45× on 1 thread and ties or wins on 2.
constexpr int64_t kAutoMinTiles = 256;
// With U kept packed across calls (sampling: no weight transform or pack per call), Winograd
// wins from far fewer tiles. Batch 1 of the issue-3 UNet on the Zen 5 VM, µs direct → Winograd:
// 1 thread, every shape (1.13–1.45×: 64→64 at 28×28 317 → 263, 128→128 at 14×14 337 → 263,
// 128→128 at 7×7 121 → 97); 2 threads, from 128 input channels (128→128 at 28×28 720 → 575,
// 256→128 at 14×14 395 → 313) but not with 64 (64→64 at 28×28 179 → 206, 64→128 at 14×14
// 108 → 117: the GEMMs' K is too short to pay for two threads' transforms). With bf16 GEMMs
// (matmul precision "medium") Winograd wins every shape on both (64→64 at 28×28, 2 threads:
// 174 → 152; 128→128 at 14×14: 182 → 113).
constexpr int64_t kKeptMinTiles = 16;
constexpr int64_t kKeptMinChannelsThreaded = 128;
// Below this many tiles per thread the threads split output channels, not tiles (7×7 at 2
// threads: 104 → 84 µs; at 14×14 splitting tiles stays better, 172 vs 182).
constexpr int64_t kMinTilesPerThread = 16;
// F(4×4, 3×3) (2.25 multiplications per output instead of F(2×2)'s 4) wins from 16 of its
// 4×4 tiles (a 14×14 map) with U kept, on 1 and 2 threads; per call (36 weight matrices to
// transform) from 16 tiles per thread. Zen 5 VM, µs, F(2×2) → F(4×4), kept U (bench/RESULTS.md):
// 1 thread 128→128 at 28×28 992 → 706, at 14×14 285 → 237, batch 16 at 14×14 4053 → 3759;
// 2 threads 64→64 at 28×28 221 → 156 (direct 186), 128→128 at 14×14 182 → 157. With 4 tiles
// (7×7) it loses (103 → 172): 4-column GEMMs. Not under bf16 GEMMs (see gemm_kernels).
constexpr int64_t kF4MinTiles = 16;
// ... except with kept U on 2 threads, where a 14×14 map (16 tiles) takes F(2×2): in a forward its transformed
// weights come from DRAM, and F(4×4)'s are 2.25× F(2×2)'s bytes. 128→128 at 14×14, 24 weight sets in turn: 195 µs
// vs 212; UNet batch 1 +5.4% (in-process A/B, q 1.038–1.078). One 28×28 map (49 tiles) keeps F(4×4) (F(2×2): −8%).
constexpr int64_t kF4MinTilesKeptThreaded = 32;

// The kernel set of the α² GEMMs: for F(2×2), bfloat16 operands under matmul precision
// "medium" (where sgemm uses them too), else the float32 set of the active ISA. F(4×4) stays
// float32: its transforms (coefficients up to 5 in Bᵀ, 8 in Aᵀ) amplify bf16's rounding to
// ~5% of the output scale (F(2×2): 0.3%).
const impl::KernelSet& gemm_kernels(const impl::KernelSet& ks, int m) {
  return m == 2 && impl::matmul_in_bf16() ? *impl::matmul_kernels() : ks;
}

const Kernels* active(int m) {
  switch (active_isa()) {
    case Isa::Avx512: return avx512::kernels(m);
    case Isa::Avx2: return avx2::kernels(m);
    default: return nullptr;
  }
}

int64_t matrices(int m) { return (m + 2) * (m + 2); }

int64_t env_int(const char* name, int64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : dflt;
}

// Tiles per chunk: V + M = α²·(IC + OC)·T floats ≈ 512 Ki floats (2 MiB: measured
// best on Zen 4 among 128 Ki / 512 Ki / 2 Mi: fewer repacks of U, V + M still in L2 + L3).
std::atomic<int64_t> g_min_ch{env_int("FASTDIFF_WINO_MIN_CH", 32)};
std::atomic<int64_t> g_chunk_floats{env_int("FASTDIFF_WINO_CHUNK_FLOATS", 512 * 1024)};

// Tile rows per chunk: about the cache target, then evened out over a chunk count that is a
// multiple of the thread count (when there are enough rows).
int64_t chunk_rows(int64_t KK, int64_t IC, int64_t OC, int64_t TW, int64_t rows_total, int threads) {
  const int64_t target_floats = g_chunk_floats.load();
  int64_t T = target_floats / (KK * (IC + OC));
  if (T < 32) T = 32;
  int64_t rows = (T + TW / 2) / TW;
  if (rows < 1) rows = 1;
  if (rows > rows_total) rows = rows_total;
  int64_t chunks = (rows_total + rows - 1) / rows;
  if (threads > 1) chunks = (chunks + threads - 1) / threads * threads;
  return (rows_total + chunks - 1) / chunks;
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

int tile(const Conv2dShape& s, bool u_kept) {
  const ConvAlgorithm algo = conv_algorithm();
  if (algo == ConvAlgorithm::Direct || algo == ConvAlgorithm::Direct3x3 || active(2) == nullptr) return 0;
  if (!conv3x3_stride1(s)) return 0;
  if (algo == ConvAlgorithm::Winograd) return 2;
  if (algo == ConvAlgorithm::Winograd4) return 4;
  const int64_t min_ch = g_min_ch.load();
  if (min_ch < 0 || s.C < min_ch || s.OC < min_ch) return 0;
  const int nt = ThreadPool::in_parallel() ? 1 : ThreadPool::global().num_threads();
  const bool bf16 = impl::matmul_in_bf16();
  const int64_t tiles4 = s.N * ((s.OH() + 3) / 4) * ((s.OW() + 3) / 4);
  const int64_t f4_min = u_kept ? (nt > 1 ? kF4MinTilesKeptThreaded : kF4MinTiles) : kF4MinTiles * nt;
  if (!bf16 && tiles4 >= f4_min) return 4;
  const int64_t tiles = s.N * ((s.OH() + 1) / 2) * ((s.OW() + 1) / 2);
  if (tiles >= kAutoMinTiles) return 2;
  const bool short_k_pays = nt == 1 || bf16;
  return u_kept && tiles >= kKeptMinTiles && s.C >= (short_k_pays ? min_ch : kKeptMinChannelsThreaded) ? 2 : 0;
}

std::shared_ptr<const PackedMatrix> pack_weight_once(const impl::KernelSet& ks, const Conv2dShape& s, const float* w) {
  const int m = tile(s, /*u_kept=*/true);
  const Kernels* wk = m ? active(m) : nullptr;
  if (!wk) return nullptr;
  const int64_t KK = matrices(m), P = s.OC * s.C, KSU = kstride(P);
  float* U = tl_u.get(static_cast<size_t>(KK * KSU));
  if (!U) return nullptr;
  wk->weight(w, P, 0, P, KSU, U);
  const impl::KernelSet& gk = gemm_kernels(ks, m);
  return impl::pack_once(gk, 'A', s.C, s.OC, impl::k_block(s.C, gk.kc), U, s.C, 1, KK, KSU, 'W');
}

bool packed_weight_fits(const PackedMatrix& pm, const impl::KernelSet& ks, const Conv2dShape& s) {
  const int m = tile(s, /*u_kept=*/true);
  if (!m) return false;
  const impl::KernelSet& gk = gemm_kernels(ks, m);
  return impl::packed_fits(pm, &gk, 'A', s.C, s.OC, impl::k_block(s.C, gk.kc), matrices(m), 'W');
}

bool conv3x3_forward(const impl::KernelSet& ks, const Conv2dShape& s, int m, const float* x, const float* w,
                     const float* bias, float* y, const PackedMatrix* packed_u) {
  const Kernels* wk = active(m);
  if (!wk) return false;
  const int64_t KK = matrices(m);
  if (packed_u && packed_u->count != KK) packed_u = nullptr;  // kept for the other tile size
  const int64_t IC = s.C, OC = s.OC, H = s.H, W = s.W, pad = s.pad_h, OH = s.OH(), OW = s.OW();
  const int64_t TH = (OH + m - 1) / m, TW = (OW + m - 1) / m, rows_total = s.N * TH;
  const impl::KernelSet& gk = gemm_kernels(ks, m);
  ThreadPool& pool = ThreadPool::global();
  const int nt = ThreadPool::in_parallel() ? 1 : pool.num_threads();
  // Few tiles (one small image): splitting them would leave each thread GEMMs a few
  // columns wide, so the threads share the output channels instead (below).
  const int parts = nt > 1 && rows_total * TW < kMinTilesPerThread * nt ? nt : 1;
  const int64_t rows = chunk_rows(KK, IC, OC, TW, rows_total, parts > 1 ? 1 : nt);
  const int64_t nchunks = (rows_total + rows - 1) / rows;
  // Two chunks of tile rows on two threads (one 28×28 image: 7 rows, 4 + 3): the rows are cut by the threads'
  // speeds instead, so the scratch holds up to all of them.
  const bool rows_by_speed = parts == 1 && nt == 2 && nchunks == 2;
  const int64_t Tmax = (rows_by_speed ? rows_total : rows) * TW, P = OC * IC;
  const int64_t KSU = kstride(P), KSV = kstride(IC * Tmax), KSM = kstride(OC * Tmax);
  const size_t per_chunk = static_cast<size_t>(KK * (KSV + KSM));
  const size_t tmp_floats = static_cast<size_t>(wk->tmp_floats(Tmax, TW, W));

  // The α² GEMMs of one chunk, output channels [o0, o1).
  auto gemms = [&](const float* U, const float* V, float* Mb, int64_t T, int64_t o0, int64_t o1) {
    for (int64_t k = 0; k < KK; ++k) {
      impl::ASource a{U + k * KSU, IC, 1};
      if (packed_u) {
        a.packed = packed_u->data + k * packed_u->stride, a.packed_mp = packed_u->P;
        if (k + 1 < KK) a.prefetch_next = a.packed + packed_u->stride;
      }
      const impl::BSource b{0, V + k * KSV, T, 1, nullptr, nullptr};
      impl::gemm_block(gk, o0, o1, 0, T, IC, 1.f, a, b, 0.f, Mb + k * KSM, T, nullptr, nullptr);
    }
  };
  auto chunk_range = [&](int64_t ci, int64_t* r0, int64_t* r1) {
    *r0 = ci * rows;
    *r1 = *r0 + rows < rows_total ? *r0 + rows : rows_total;
  };

  std::atomic<bool> ok{true};
  // Runs `body(U, V·M scratch, tmp)` with this thread's buffers (false: out of memory). Every thread transforms the
  // weights itself: recomputing U (~10 µs for 64×64 channels) is cheaper than moving it between cores.
  auto with_buffers = [&](const auto& body) {
    float* U = packed_u ? nullptr : tl_u.get(static_cast<size_t>(KK * KSU));
    float* vm = tl_vm.get(per_chunk);
    float* tmp = tl_tmp.get(tmp_floats);
    if ((!packed_u && !U) || !vm || !tmp) return ok.store(false);
    if (!packed_u) wk->weight(w, P, 0, P, KSU, U);
    body(U, vm, tmp);
  };
  // Tile rows [r0, r1) for output channels [o0, o1).
  auto chunk = [&](const float* U, float* vm, float* tmp, int64_t r0, int64_t r1, int64_t o0, int64_t o1) {
    const int64_t T = (r1 - r0) * TW;
    float* V = vm;
    float* Mb = vm + KK * KSV;
    wk->input(x, IC, H, W, pad, TH, TW, r0, r1, 0, IC, T, KSV, V, tmp);
    gemms(U, V, Mb, T, o0, o1);
    wk->output(Mb, OC, OH, OW, TH, TW, r0, r1, o0, o1, T, KSM, bias, y, tmp);
  };
  // Work item i: chunk i / parts, output-channel share i % parts.
  auto run_items = [&](int64_t ib, int64_t ie) {
    with_buffers([&](const float* U, float* vm, float* tmp) {
      for (int64_t item = ib; item < ie; ++item) {
        int64_t r0, r1, o0, o1;
        chunk_range(item / parts, &r0, &r1);
        // Even shares of output channels, not whole panels of mr (128 = 70 + 58 with mr 14): gemm_block reads a
        // kept U from inside a panel, and the halves of y are then the halves the next elementwise op takes.
        impl::block_range(OC, 1, parts, int(item % parts), &o0, &o1);
        chunk(U, vm, tmp, r0, r1, o0, o1);
      }
    });
  };
  if (rows_by_speed) {
    pool.parallel_for_balanced(rows_total, 1, [&](int64_t r0, int64_t r1) {
      with_buffers([&](const float* U, float* vm, float* tmp) { chunk(U, vm, tmp, r0, r1, 0, OC); });
    });
    return ok.load();
  }
  if (parts > 1 && nchunks == 1) {
    // One chunk shared by output channels: the threads transform disjoint input channels into one V, then each
    // multiplies and transforms back its share of the output channels (reading the other's half of V) — rather
    // than each transforming every input channel itself, which at 14×14 costs a third of a thread's time.
    float* V = tl_vm.get(static_cast<size_t>(KK * KSV));
    if (!V) return false;
    const int64_t T = rows_total * TW;
    auto input = [&](int64_t c0, int64_t c1) {
      float* tmp = tl_tmp.get(tmp_floats);
      if (!tmp) return ok.store(false);
      wk->input(x, IC, H, W, pad, TH, TW, 0, rows_total, c0, c1, T, KSV, V, tmp);
    };
    auto multiply = [&](int64_t o0, int64_t o1) {
      float* U = packed_u ? nullptr : tl_u.get(static_cast<size_t>(KK * KSU));
      float* Mb = tl_m.get(static_cast<size_t>(KK * KSM));  // not tl_vm: the submitting thread's holds V
      float* tmp = tl_tmp.get(tmp_floats);
      if ((!packed_u && !U) || !Mb || !tmp) return ok.store(false);
      if (!packed_u) wk->weight(w, P, 0, P, KSU, U);
      gemms(U, V, Mb, T, o0, o1);
      wk->output(Mb, OC, OH, OW, TH, TW, 0, rows_total, o0, o1, T, KSM, bias, y, tmp);
    };
    // Channels are cut anywhere (gemm_block reads a kept U from inside a panel), in shares by the threads' speed.
    pool.parallel_for_balanced(IC, 1, input);
    if (!ok.load()) return false;
    pool.parallel_for_balanced(OC, 1, multiply);
    return ok.load();
  }
  const int64_t items = nchunks * parts;
  if (nt > 1 && items > 1)
    pool.parallel_for(items, 1, run_items);
  else
    run_items(0, items);
  return ok.load();
}

}  // namespace fd::kernels::wino
