// SGEMM driver (x86-64-v2 baseline): BLIS-style cache blocking around the ISA
// micro-kernels. Loop nest per thread block: jc (nc columns of B, packed, L3) →
// pc (kc of K, fixed split depending only on K) → ic (mc rows of A, packed, L2) →
// jr (nr) → ir (mr) micro-tile. Threads own disjoint blocks of C (2-D split over
// M and N in micro-tile units); K is never split, and the K blocking depends only
// on K, so every C element is computed by the same FMA sequence for any thread
// count. Scratch panels live in 64-byte-aligned thread-local buffers reused
// across calls (large ones on huge pages, so the packed B block costs few TLB
// entries). Isa::Scalar runs the reference.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "core/allocator.h"
#include "core/cpu.h"
#include "core/precision.h"
#include "core/threadpool.h"
#include "kernels/gemm.h"
#include "kernels/gemm_impl.h"
#include "kernels/scratch.h"

namespace fd::kernels {
namespace impl {
namespace {

thread_local ScratchBuf tl_a, tl_b;
constexpr int64_t kStageFloats = 512;  // one micro-tile (mr × nr ≤ 512 in every kernel set)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// GemmEpilogue's activation, then its gated residual, over rows [i0, i1) × columns [j0, j0 + n) of C: serial (a
// thread's row block), one kernel call per run of rows under one gate row.
void finish_rows(const GemmEpilogue& ep, float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0, int64_t n) {
  float* c = C + i0 * ldc + j0;
  if (ep.activation) unary_rows(*ep.activation, i1 - i0, n, c, ldc, c, ldc);
  if (!ep.residual) return;
  for (int64_t i = i0; i < i1;) {
    const int64_t p = ep.gate_period, run = ep.gate ? std::min(i1 - i, p - i % p) : i1 - i;
    const float* gate = ep.gate ? ep.gate + i / p * ep.gate_ld + j0 : nullptr;
    gated_add_rows(run, n, C + i * ldc + j0, ldc, gate, ep.residual + i * ldc + j0, ldc, C + i * ldc + j0, ldc);
    i += run;
  }
}

// The epilogue when it has row work to do (activation or gated residual), else null.
const GemmEpilogue* finishing(const GemmEpilogue& ep) { return ep.activation || ep.residual ? &ep : nullptr; }

float b_elem(const BSource& B, int64_t k, int64_t j) {
  if (B.kind == 0) return B.p[k * B.rs + j * B.cs];
  if (B.kind == 1) {
    const ConvSrc& s = *B.conv;
    const int64_t KK = s.KH * s.KW, c = k / KK, kh = (k % KK) / s.KW, kw = k % s.KW;
    const int64_t oh = j / s.OW, ow = j % s.OW;
    const int64_t ih = oh * s.sh - s.ph + kh * s.dh, iw = ow * s.sw - s.pw + kw * s.dw;
    return (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) ? s.x[(c * s.H + ih) * s.W + iw] : 0.f;
  }
  const ConvTSrc& s = *B.convt;
  const int64_t oh = k / s.OW, ow = k % s.OW, khw = j / s.C, c = j % s.C, kh = khw / s.KW, kw = khw % s.KW;
  return s.xt[((oh * s.sh + kh * s.dh) * s.Wp + ow * s.sw + kw * s.dw) * s.C + c];
}

// C = beta·C + biases on a block (K == 0 or alpha == 0), or the whole product in
// plain loops when scratch memory cannot be had (never throws).
void block_fallback(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha, const ASource& A,
                    const BSource& B, float beta, float* C, int64_t ldc, const float* bias_row, const float* bias_col) {
  const bool product = K > 0 && alpha != 0.f;
  for (int64_t i = m0; i < m1; ++i)
    for (int64_t j = n0; j < n1; ++j) {
      float acc = 0.f;
      if (product)
        for (int64_t k = 0; k < K; ++k) acc += A.p[i * A.rs + k * A.cs] * b_elem(B, k, j);
      float r = acc * alpha;
      if (beta != 0.f) r += beta * C[i * ldc + j];
      if (bias_row) r += bias_row[i];
      if (bias_col) r += bias_col[j];
      C[i * ldc + j] = r;
    }
}

}  // namespace

int64_t k_block(int64_t K, int64_t kc_max) {
  const int64_t nkb = ceil_div(K, kc_max);
  return round_up(ceil_div(K, nkb), 4);
}

const KernelSet* active_kernels() {
  switch (active_isa()) {
    case Isa::Avx512: return avx512::kernel_set();
    case Isa::Avx2: return avx2::kernel_set();
    default: return nullptr;
  }
}

bool matmul_in_bf16() {
  const Isa isa = active_isa();
  return matmul_precision() == MatmulPrecision::Medium && cpu_features().avx512bf16 &&
         (isa == Isa::Avx512 || isa == Isa::Scalar);
}

const KernelSet* matmul_kernels() {
  return matmul_in_bf16() && active_isa() == Isa::Avx512 ? avx512::bf16_kernel_set() : active_kernels();
}

void gemm_block(const KernelSet& ks, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha,
                const ASource& A, const BSource& B, float beta, float* C, int64_t ldc, const float* bias_row,
                const float* bias_col, const GemmEpilogue* finish) {
  if (m0 >= m1 || n0 >= n1) return;
  if (K <= 0 || alpha == 0.f) {
    block_fallback(m0, m1, n0, n1, 0, alpha, A, B, beta, C, ldc, bias_row, bias_col);
    if (finish) finish_rows(*finish, C, ldc, m0, m1, n0, n1 - n0);
    return;
  }
  const int64_t MR = ks.mr, NR = ks.nr;
  // K split depends only on K (determinism); balanced so no tiny tail block.
  const int64_t ks_kc = B.kind != 0 ? ks.kc_conv : ks.kc;
  const int64_t ks_mc = (B.kind != 0 && ks.mc_conv) ? ks.mc_conv : ks.mc, ks_nc = ks.nc;
  const int64_t KC = k_block(K, ks_kc);
  const int64_t M = m1 - m0, N = n1 - n0;
  const int64_t nmb = ceil_div(M, ks_mc);
  const int64_t MC = round_up(ceil_div(M, nmb), MR);
  const int64_t nnb = ceil_div(N, ks_nc);
  const int64_t NC = round_up(ceil_div(N, nnb), NR);
  const bool prepacked = B.kind == 0 && B.packed;
  float* abuf = A.packed ? nullptr : tl_a.get(static_cast<size_t>(MC * KC));
  float* bbuf = prepacked ? nullptr : tl_b.get(static_cast<size_t>(NC * KC));
  if ((!A.packed && !abuf) || (!prepacked && !bbuf)) {
    block_fallback(m0, m1, n0, n1, K, alpha, A, B, beta, C, ldc, bias_row, bias_col);
    return;
  }
  // An activation runs on each micro-tile right after its last K block (a pass over the row block afterwards read it
  // back from L2/L3: 196×256 → 1024 with GELU took 16% longer than without); a residual stays a pass over the row
  // block (one K block: its rows are still in cache).
  const Unary* tile_act = finish && finish->activation ? &*finish->activation : nullptr;
  GemmEpilogue row_part;
  if (finish) row_part = *finish, row_part.activation.reset();
  const GemmEpilogue* row_finish = finish ? finishing(row_part) : nullptr;
  auto finish_tile = [&](bool last_k, float* c, int m, int n) {
    if (tile_act && last_k) unary_rows(*tile_act, m, n, c, ldc, c, ldc);
  };
  MicroEpi epi;
  epi.alpha = alpha;
  epi.beta = beta;
  // A full tile of a kernel set with micro_act (AVX-512 float32) takes its activation in registers before the store
  // (196×256 → 1024: ReLU costs nothing, GELU 16–25 µs less than staged below; DiT batch 1, 1 thread +0.2–1.0%).
  // Otherwise, a tile that is one K block into a wide, write-only C is computed into `stage` (contiguous, in L1) and its
  // activation reads it there and writes C: a wide C's tile rows are ldc floats apart — 4 KiB at 1024 columns, one
  // L1 set — so even a tile just stored to C came back from L2 (196×256 → N + ReLU: N = 1024 548 → 532 µs, 512 and
  // 768 −2–3 µs, 256 +3.6 µs, hence ≥ 512 only; + GELU at 1024 −11 µs; same bits). The tile's C rows are fetched
  // for writing meanwhile, as the micro-kernel would have.
  alignas(64) float stage[kStageFloats];
  auto micro_tile = [&](int64_t kc, const float* at, const float* bp, float* c, int m, int n, bool last_k) {
    const bool act_on_store = tile_act && last_k && epi.first && beta == 0.f;  // one K block into write-only C
    if (act_on_store && m == MR && n == NR && ks.micro_act && ks.micro_act(kc, at, bp, c, ldc, &epi, *tile_act))
      return;
    if (act_on_store && ldc >= 512 && MR * NR <= kStageFloats) {
      for (int i = 0; i < m; ++i) __builtin_prefetch(c + i * ldc, 1, 3), __builtin_prefetch(c + i * ldc + n - 1, 1, 3);
      ks.micro(kc, at, bp, stage, NR, m, n, &epi);
      unary_rows(*tile_act, m, n, stage, NR, c, ldc);
      return;
    }
    ks.micro(kc, at, bp, c, ldc, m, n, &epi);
    finish_tile(last_k, c, m, n);
  };
  // The packed A panels of K block pc from row i on: packed here into abuf (from row i), or found in
  // A.packed, whose panels start at multiples of MR — then from the panel holding row i (see a_tile).
  auto pack_a_block = [&](int64_t pc, int64_t kc, int64_t i, int64_t mc) -> const float* {
    if (A.packed) return A.packed + pc * A.packed_mp + (i - i % MR) * kc;
    ks.pack_a(A.p + i * A.rs + pc * A.cs, A.rs, A.cs, mc, kc, abuf);
    return abuf;
  };
  // Micro-tile rows of a row block [i, i + mc) whose panels start at ap: rows r.. of the block, up to the end
  // of the panel holding it. A kept pack split at a row inside a panel (threads sharing output rows evenly,
  // not in whole panels) begins with a short tile read at that row's offset in its panel: the micro-kernel
  // steps MR floats per k whatever its row count.
  auto a_tile = [&](const float* ap, int64_t kc, int64_t i, int64_t r, int64_t mc, int* m) -> const float* {
    const int64_t head = A.packed ? i % MR : 0, q = r + head, off = q % MR;
    *m = static_cast<int>(min64(MR - off, mc - r));
    return ap + (q - off) * kc + off;
  };
  // Kept weights come from memory on every call — a network's weights do not stay cached between uses — so
  // tiles fetch the weights their successors need into L2 while they compute. A kept B panel: the first four
  // tiles on it fetch the next panel, a quarter each (half a line per k step), so its first tile does not
  // wait on DRAM (DiT at batch 1, in-process A/B: 1 thread +1.4%, 2 threads +3.1%; after the later changes of
  // bench/RESULTS.md 2026-12-07 (b) ±0 — the hardware's own prefetch may now cover it). A kept A with at most
  // two B panels (a Winograd U_k or conv weight at batch 1: each A panel serves one or two tiles, so the GEMM
  // streams A): on the first B panel every tile fetches the next tile's A panel, the last one the first panel
  // of the caller's next A (UNet at batch 1: 1 thread +6–8%, 2 threads +6–12%; with more columns A is
  // reused from cache and batch 16 measured no gain).
  // The first A tile of the next call (A.prefetch_next), for this block's rows; one K block only.
  auto next_call_a = [&](int64_t kc) -> const float* {
    return A.prefetch_next && kc == K ? A.prefetch_next + (m0 - m0 % MR) * kc + m0 % MR : nullptr;
  };
  auto set_prefetch = [&](const float* bp, int64_t kc, int64_t tile, bool next_b, bool first_b, const float* next_a) {
    epi.prefetch = nullptr;
    if (prepacked) {
      if (next_b && tile < 4) epi.prefetch = bp + NR * kc + tile * (kc / 2) * 16, epi.prefetch_step = 8;
    } else if (A.packed && first_b && next_a && N <= 2 * NR) {
      epi.prefetch = next_a, epi.prefetch_step = MR;
    }
  };
  // The packed B panels of K block pc from column j on: packed here into dst, or found in B.packed.
  auto pack_b_block = [&](int64_t pc, int64_t kc, int64_t j, int64_t n, float* dst) -> const float* {
    if (prepacked) return B.packed + pc * B.packed_np + j * kc;
    switch (B.kind) {
      case 0: ks.pack_b(B.p + pc * B.rs + j * B.cs, B.rs, B.cs, kc, n, dst); break;
      case 1: ks.pack_b_conv(B.conv, pc, kc, j, n, dst); break;
      default: ks.pack_b_convt(B.convt, pc, kc, j, n, dst); break;
    }
    return dst;
  };
  // A wide C of a plain product (≥ 512 columns: 196×1024 floats is 800 KB, past L2 beside its weights) is written
  // cold: each of a tile's rows is a line in another page, fetched from DRAM before the store. The first K block
  // fetches (for writing) the lines of the same rows one panel ahead, a panel's time before they are stored.
  const bool prefetch_c = B.kind == 0 && N >= 512;
  auto fetch_c_ahead = [&](int64_t row0, int rows, int64_t col) {
    if (!prefetch_c || !epi.first || col >= n1) return;
    const int64_t ncols = min64(NR, n1 - col);
    for (int64_t r = row0; r < row0 + rows; ++r)
      for (int64_t c = 0; c < ncols; c += 16) __builtin_prefetch(C + r * ldc + col + c, 1, 3);
  };
  if (M <= MC || B.kind == 1) {
    // One row block (e.g. conv layers, OC ≤ mc) or implicit im2col: pack A per row
    // block, then pack each B panel just before its micro-tiles so it is written and
    // read in L1/L2 (no large packed-B block streaming through L2).
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = min64(KC, K - pc);
      epi.first = pc == 0;
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = min64(MC, m1 - ic);
        const float* ap = pack_a_block(pc, kc, ic, mc);
        for (int64_t jr = n0; jr < n1; jr += NR) {
          const int n = static_cast<int>(min64(NR, n1 - jr));
          epi.bias_col = (bias_col && epi.first) ? bias_col + jr : nullptr;
          int64_t ir0 = 0;
          const bool aligned = !A.packed || ic % MR == 0;
          if (B.kind == 1 && ks.conv_first && aligned) {  // pack fused into the first micro-tile
            epi.bias_row = (bias_row && epi.first) ? bias_row + ic : nullptr;
            if (ks.conv_first(B.conv, pc, kc, jr, n, ap, bbuf, C + ic * ldc + jr, ldc,
                              static_cast<int>(min64(MR, mc)), &epi)) {
              ir0 = MR;
              finish_tile(pc + kc == K, C + ic * ldc + jr, static_cast<int>(min64(MR, mc)), n);
            }
          } else if (B.kind == 2 && ks.convt_first && aligned) {
            epi.bias_row = (bias_row && epi.first) ? bias_row + ic : nullptr;
            if (ks.convt_first(B.convt, pc, kc, jr, n, ap, bbuf, C + ic * ldc + jr, ldc,
                               static_cast<int>(min64(MR, mc)), &epi)) {
              ir0 = MR;
              finish_tile(pc + kc == K, C + ic * ldc + jr, static_cast<int>(min64(MR, mc)), n);
            }
          }
          const float* bp = ir0 == 0 ? pack_b_block(pc, kc, jr, n, bbuf) : bbuf;
          int m = 0;
          for (int64_t ir = ir0; ir < mc; ir += m) {
            const float* at = a_tile(ap, kc, ic, ir, mc, &m);
            epi.bias_row = (bias_row && epi.first) ? bias_row + ic + ir : nullptr;
            int m_next = 0;
            set_prefetch(bp, kc, (ir - ir0) / MR, jr + NR < n1, jr == n0,
                         ir + m < mc ? a_tile(ap, kc, ic, ir + m, mc, &m_next) : ic + MC >= m1 ? next_call_a(kc) : nullptr);
            fetch_c_ahead(ic + ir, m, jr + NR);
            micro_tile(kc, at, bp, C + (ic + ir) * ldc + jr, m, n, pc + kc == K);
          }
        }
        if (row_finish && pc + kc == K) finish_rows(*row_finish, C, ldc, ic, ic + mc, n0, n1 - n0);  // rows just computed, in cache
      }
    }
    return;
  }
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = min64(NC, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = min64(KC, K - pc);
      const float* bblock = pack_b_block(pc, kc, jc, nc, bbuf);
      epi.first = pc == 0;
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = min64(MC, m1 - ic);
        const float* ap = pack_a_block(pc, kc, ic, mc);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int n = static_cast<int>(min64(NR, nc - jr));
          epi.bias_col = (bias_col && epi.first) ? bias_col + jc + jr : nullptr;
          const float* bp = bblock + jr * kc;
          int m = 0;
          for (int64_t ir = 0; ir < mc; ir += m) {
            const float* at = a_tile(ap, kc, ic, ir, mc, &m);
            epi.bias_row = (bias_row && epi.first) ? bias_row + ic + ir : nullptr;
            int m_next = 0;
            set_prefetch(bp, kc, ir / MR, jr + NR < nc, jr == 0,
                         ir + m < mc ? a_tile(ap, kc, ic, ir + m, mc, &m_next) : ic + MC >= m1 ? next_call_a(kc) : nullptr);
            fetch_c_ahead(ic + ir, m, jc + jr + NR < jc + nc ? jc + jr + NR : n1);
            micro_tile(kc, at, bp, C + (ic + ir) * ldc + jc + jr, m, n, pc + kc == K);
          }
        }
        if (row_finish && pc + kc == K) finish_rows(*row_finish, C, ldc, ic, ic + mc, jc, nc);
      }
    }
  }
}

void split_2d(int64_t M, int64_t N, int64_t mr, int64_t nr, int T, int* tm, int* tn, bool prefer_rows) {
  const int64_t pm = ceil_div(M, mr), pn = ceil_div(N, nr);
  int64_t best = -1;
  *tm = 1;
  *tn = 1;
  for (int a = 1; a <= T; ++a) {
    if (T % a) continue;
    const int b = T / a;
    if (a > pm || b > pn) continue;
    const int64_t cost = ceil_div(pm, a) * mr * ceil_div(pn, b) * nr;
    const bool better_tie = prefer_rows ? a > *tm : b > *tn;
    if (best < 0 || cost < best || (cost == best && better_tie)) {
      best = cost;
      *tm = a;
      *tn = b;
    }
  }
}

void block_range(int64_t total, int64_t unit, int parts, int idx, int64_t* b, int64_t* e) {
  const int64_t p = ceil_div(total, unit);
  *b = min64(total, (p * idx / parts) * unit);
  *e = min64(total, (p * (idx + 1) / parts) * unit);
}

int useful_threads(int64_t M, int64_t N, int64_t K) {
  const int T = ThreadPool::in_parallel() ? 1 : ThreadPool::global().num_threads();
  const double work = double(M) * double(N) * double(K > 0 ? K : 1);
  if (T <= 1 || work < 48.0 * 48.0 * 48.0) return 1;
  const int64_t by_work = static_cast<int64_t>(work / (32.0 * 32.0 * 32.0));
  return static_cast<int>(by_work < T ? (by_work < 1 ? 1 : by_work) : T);
}

void gemm_threaded(const KernelSet& ks, int64_t M, int64_t N, int64_t K, float alpha, const ASource& A,
                   const BSource& B, float beta, float* C, int64_t ldc, const float* bias_row, const float* bias_col,
                   const GemmEpilogue* finish) {
  if (M <= 0 || N <= 0) return;
  int T = useful_threads(M, N, K);
  int tm = 1, tn = 1;
  // A packed per call beside a kept packed B (a linear's activations and weights): split rows on a tie, so
  // each thread packs only its own rows of A — a column split has every thread pack all of A.
  const bool prefer_rows = B.kind == 0 && B.packed && !A.packed;
  if (T > 1) split_2d(M, N, ks.mr, ks.nr, T, &tm, &tn, prefer_rows);
  T = tm * tn;
  if (T <= 1) {
    gemm_block(ks, 0, M, 0, N, K, alpha, A, B, beta, C, ldc, bias_row, bias_col, finish);
    return;
  }
  auto& pool = ThreadPool::global();
  if (T == 2 && pool.num_threads() == 2) {  // rows cut anywhere, columns in whole panels (see below), by speed
    if (tn == 1)
      pool.parallel_for_balanced(M, 1, [&](int64_t mb, int64_t me) {
        gemm_block(ks, mb, me, 0, N, K, alpha, A, B, beta, C, ldc, bias_row, bias_col, finish);
      });
    else
      pool.parallel_for_balanced(ceil_div(N, ks.nr), 1, [&](int64_t pb, int64_t pe) {
        gemm_block(ks, 0, M, pb * ks.nr, min64(N, pe * ks.nr), K, alpha, A, B, beta, C, ldc, bias_row, bias_col, finish);
      });
    return;
  }
  pool.run_on_all(
      [&](int tid, int nt) {
        if (nt != T) {  // fewer threads than asked: cover everything from thread 0
          if (tid == 0) gemm_block(ks, 0, M, 0, N, K, alpha, A, B, beta, C, ldc, bias_row, bias_col, finish);
          return;
        }
        // Rows in even shares (a packed A is read from inside a panel, see gemm_block), columns in
        // whole panels of nr (a packed B is not).
        int64_t mb, me, nb, ne;
        block_range(M, 1, tm, tid / tn, &mb, &me);
        block_range(N, ks.nr, tn, tid % tn, &nb, &ne);
        gemm_block(ks, mb, me, nb, ne, K, alpha, A, B, beta, C, ldc, bias_row, bias_col, finish);
      },
      T);
}

}  // namespace impl

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
           const GemmEpilogue& epilogue) {
  if (M <= 0 || N <= 0) return;
  const impl::KernelSet* ks = impl::matmul_kernels();
  const GemmEpilogue* finish = impl::finishing(epilogue);
  if (!ks) {
    (impl::matmul_in_bf16() ? ref::sgemm_bf16 : ref::sgemm)(M, N, K, alpha, A, B, beta, C, ldc,
                                                                    epilogue.bias_row, epilogue.bias_col);
    if (finish) impl::finish_rows(*finish, C, ldc, 0, M, 0, N);
    return;
  }
  const impl::ASource a{A.p, A.rs, A.cs};
  const impl::BSource b{0, B.p, B.rs, B.cs, nullptr, nullptr};
  impl::gemm_threaded(*ks, M, N, K, alpha, a, b, beta, C, ldc, epilogue.bias_row, epilogue.bias_col, finish);
}

PackedMatrix::~PackedMatrix() {
  if (data) HostAllocator::instance().release(data, bytes);
}

namespace impl {

std::shared_ptr<const PackedMatrix> pack_once(const KernelSet& ks, char operand, int64_t K, int64_t MN, int64_t KC,
                                              const float* p, int64_t rs, int64_t cs, int64_t count, int64_t p_stride,
                                              char source) {
  auto pm = std::make_shared<PackedMatrix>();
  pm->kernels = &ks;
  pm->operand = operand;
  pm->source = source;
  pm->K = K;
  pm->MN = MN;
  pm->KC = KC;
  pm->P = round_up(MN, operand == 'A' ? ks.mr : ks.nr);
  pm->count = count;
  pm->stride = K * pm->P;
  // + slack: vector tails may read past the last panel, as with the scratch buffers
  pm->data = static_cast<float*>(
      HostAllocator::instance().allocate(size_t(count * pm->stride + 64) * sizeof(float), &pm->bytes));
  for (int64_t i = 0; i < count; ++i) {
    const float* src = p + i * p_stride;
    float* dst = pm->data + i * pm->stride;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = min64(KC, K - pc);
      if (operand == 'A')
        ks.pack_a(src + pc * cs, rs, cs, MN, kc, dst + pc * pm->P);
      else
        ks.pack_b(src + pc * rs, rs, cs, kc, MN, dst + pc * pm->P);
    }
  }
  return pm;
}

bool packed_fits(const PackedMatrix& pm, const KernelSet* ks, char operand, int64_t K, int64_t MN, int64_t KC,
                 int64_t count, char source) {
  return pm.kernels == ks && pm.operand == operand && pm.K == K && pm.MN == MN && pm.KC == KC && pm.count == count &&
         pm.source == source;
}

}  // namespace impl

std::shared_ptr<const PackedMatrix> pack_b_once(int64_t K, int64_t N, MatView B) {
  const impl::KernelSet* ks = impl::matmul_kernels();
  if (!ks || K <= 0 || N <= 0) return nullptr;
  return impl::pack_once(*ks, 'B', K, N, impl::k_block(K, ks->kc), B.p, B.rs, B.cs);
}

bool packed_b_fits(const PackedMatrix& pm, int64_t K, int64_t N) {
  const impl::KernelSet* ks = impl::matmul_kernels();
  return ks && impl::packed_fits(pm, ks, 'B', K, N, impl::k_block(K, ks->kc));
}

void sgemm_packed(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, const PackedMatrix& packed,
                  float beta, float* C, int64_t ldc, const GemmEpilogue& epilogue) {
  if (M <= 0 || N <= 0) return;
  const auto& ks = *static_cast<const impl::KernelSet*>(packed.kernels);
  impl::BSource b{0, B.p, B.rs, B.cs, nullptr, nullptr};
  b.packed = packed.data;
  b.packed_np = packed.P;
  impl::gemm_threaded(ks, M, N, K, alpha, impl::ASource{A.p, A.rs, A.cs}, b, beta, C, ldc, epilogue.bias_row,
                      epilogue.bias_col, impl::finishing(epilogue));
}

void sgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, MatView A, int64_t stride_a, MatView B,
                   int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const impl::KernelSet* ks = impl::matmul_kernels();
  if (!ks) {
    const auto oracle = impl::matmul_in_bf16() ? ref::sgemm_bf16 : ref::sgemm;
    for (int64_t b = 0; b < batch; ++b)
      oracle(M, N, K, alpha, MatView{A.p + b * stride_a, A.rs, A.cs}, MatView{B.p + b * stride_b, B.rs, B.cs},
                 beta, C + b * stride_c, ldc, nullptr, nullptr);
    return;
  }
  const int T = ThreadPool::in_parallel() ? 1 : ThreadPool::global().num_threads();
  auto one = [&](int64_t b, bool threaded) {
    const impl::ASource a{A.p + b * stride_a, A.rs, A.cs};
    const impl::BSource bs{0, B.p + b * stride_b, B.rs, B.cs, nullptr, nullptr};
    if (threaded)
      impl::gemm_threaded(*ks, M, N, K, alpha, a, bs, beta, C + b * stride_c, ldc, nullptr, nullptr);
    else
      impl::gemm_block(*ks, 0, M, 0, N, K, alpha, a, bs, beta, C + b * stride_c, ldc, nullptr, nullptr);
  };
  if (T > 1 && (batch % T == 0 || batch >= 4 * T)) {
    ThreadPool::global().parallel_for(batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) one(b, false);
    });
  } else {
    for (int64_t b = 0; b < batch; ++b) one(b, true);
  }
}

}  // namespace fd::kernels
