// Direct 3×3 convolution driver (x86-64-v2 baseline): see kernels/direct3x3.h. Per call: the
// weight blocks (unless kept packed), a zero-padded copy of x (padding 1), then work items
// (image, block of 32 output channels, strip of output pixels) shared between the threads by
// their speed; items run block by block, so each thread streams about its share of the weights.
#include "kernels/direct3x3.h"

#include <cstring>

#include "core/allocator.h"
#include "core/cpu.h"
#include "core/precision.h"
#include "core/threadpool.h"
#include "kernels/gemm_impl.h"
#include "kernels/scratch.h"

namespace fd::kernels::d3 {
namespace {

thread_local ScratchBuf tl_w, tl_x;

// "auto" takes this path on ≥ 2 threads up to one 8×8 map of outputs over the batch. The issue-3 UNet's convs on the
// 2-vCPU Zen 5 VM, µs, 24 kept weights in turn (their bytes come from DRAM, as in a forward), auto / implicit GEMM /
// F(2×2) / F(4×4) / this kernel (bench/RESULTS.md, 2026-12-07): 2 threads, 7×7 128→128 65 / 77 / 99 / 143 / 69,
// 256→128 138 / 151 / 176 / 262 / 132; 1 thread 128→128 90 / 118 / 88 / 175 / 94, so 1 thread keeps F(2×2). On a
// 14×14 map F(4×4) wins (2 threads 212 vs 229; 1 thread 194 vs 353); on two 7×7 images F(2×2) (117 vs 125).
constexpr int64_t kAutoMaxPixels = 64;
constexpr int64_t kAutoMinChannels = 16;

const Kernels* active() { return active_isa() == Isa::Avx512 ? avx512::kernels() : nullptr; }

bool computable(const Conv2dShape& s) { return active() && conv3x3_stride1(s) && s.N > 0 && s.C > 0 && s.OC > 0; }

int64_t blocks(int64_t OC) { return (OC + kBlock - 1) / kBlock; }

// wb[(b·C + c)·9·32 + tap·32 + lane] = w[b·32 + lane][c][tap], zero for channels past OC.
void pack(const float* w, int64_t OC, int64_t C, float* wb) {
  const int64_t nb = blocks(OC);
  if (OC % kBlock) std::memset(wb + (nb - 1) * C * 9 * kBlock, 0, sizeof(float) * size_t(C * 9 * kBlock));
  for (int64_t o = 0; o < OC; ++o) {
    float* dst = wb + (o / kBlock) * C * 9 * kBlock + o % kBlock;
    for (int64_t k = 0; k < C * 9; ++k) dst[k * kBlock] = w[o * C * 9 + k];
  }
}

// Output strips of one image: pairs of rows for maps ≤ 7 wide, else each row cut into even pieces of ≤ 14.
struct Strips {
  int64_t OH, OW, per_row, count;
  Strips(int64_t oh, int64_t ow) : OH(oh), OW(ow) {
    per_row = OW <= kMaxPixels / 2 ? 0 : (OW + kMaxPixels - 1) / kMaxPixels;
    count = per_row ? OH * per_row : (OH + 1) / 2;
  }
  void get(int64_t i, int64_t* row, int* rows, int64_t* col, int* pw) const {
    if (!per_row) {
      *row = 2 * i, *rows = OH - 2 * i >= 2 ? 2 : 1, *col = 0, *pw = int(OW);
      return;
    }
    const int64_t k = i % per_row;
    *row = i / per_row, *rows = 1;
    *col = OW * k / per_row;
    *pw = int(OW * (k + 1) / per_row - *col);
  }
};

}  // namespace

bool chosen(const Conv2dShape& s) {
  const ConvAlgorithm algo = conv_algorithm();
  if (algo == ConvAlgorithm::Direct3x3) return computable(s);
  if (algo != ConvAlgorithm::Auto || !computable(s)) return false;
  const int threads = ThreadPool::in_parallel() ? 1 : ThreadPool::global().num_threads();
  return threads > 1 && s.C >= kAutoMinChannels && s.OC >= kAutoMinChannels && !impl::matmul_in_bf16() &&
         s.N * s.OH() * s.OW() <= kAutoMaxPixels;
}

std::shared_ptr<const PackedMatrix> pack_weight_once(const Conv2dShape& s, const float* w) {
  if (!computable(s)) return nullptr;
  auto pm = std::make_shared<PackedMatrix>();
  pm->kernels = active();
  pm->operand = 'A';
  pm->source = 'D';
  pm->K = pm->KC = s.C * 9;
  pm->MN = s.OC;
  pm->P = blocks(s.OC) * kBlock;
  pm->stride = pm->K * pm->P;
  pm->data = static_cast<float*>(HostAllocator::instance().allocate(size_t(pm->stride) * sizeof(float), &pm->bytes));
  pack(w, s.OC, s.C, pm->data);
  return pm;
}

bool packed_weight_fits(const PackedMatrix& pm, const Conv2dShape& s) {
  return pm.source == 'D' && pm.kernels == active() && pm.K == s.C * 9 && pm.MN == s.OC;
}

bool forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
             const PackedMatrix* packed) {
  const Kernels* k = active();
  if (!k) return false;
  const int64_t C = s.C, OC = s.OC, H = s.H, W = s.W, pad = s.pad_h, OH = s.OH(), OW = s.OW();
  const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad, plane = Hp * Wp, nb = blocks(OC);
  const float* wb = packed && packed_weight_fits(*packed, s) ? packed->data : nullptr;
  if (!wb) {
    float* buf = tl_w.get(static_cast<size_t>(nb * C * 9 * kBlock));
    if (!buf) return false;
    pack(w, OC, C, buf);
    wb = buf;
  }
  const float* xp = x;
  if (pad) {
    float* buf = tl_x.get(static_cast<size_t>(s.N * C * plane));
    if (!buf) return false;
    for (int64_t nc = 0; nc < s.N * C; ++nc) {  // every float of the plane written once: zero border, rows of x
      float* d = buf + nc * plane;
      std::memset(d, 0, sizeof(float) * size_t(Wp + 1));
      for (int64_t i = 0; i < H; ++i) {
        std::memcpy(d + (i + 1) * Wp + 1, x + (nc * H + i) * W, sizeof(float) * size_t(W));
        d[(i + 1) * Wp + W + 1] = d[(i + 2) * Wp] = 0.f;  // right border of this row, left border of the next
      }
      std::memset(d + (H + 1) * Wp + 1, 0, sizeof(float) * size_t(Wp - 1));
    }
    xp = buf;
  }
  const Strips strips(OH, OW);
  auto run_items = [&](int64_t ib, int64_t ie) {
    alignas(64) float out[kMaxPixels * kBlock];
    for (int64_t item = ib; item < ie; ++item) {
      const int64_t n = item / (nb * strips.count), b = item / strips.count % nb;
      int64_t row, col;
      int rows, pw;
      strips.get(item % strips.count, &row, &rows, &col, &pw);
      k->strip(rows, pw, xp + n * C * plane + row * Wp + col, plane, Wp, C, wb + b * C * 9 * kBlock, out);
      const int64_t o1 = (b + 1) * kBlock < OC ? (b + 1) * kBlock : OC;
      for (int64_t o = b * kBlock; o < o1; ++o) {
        const float bo = bias ? bias[o] : 0.f;
        const float* src = out + (o - b * kBlock);
        for (int r = 0; r < rows; ++r) {
          float* dst = y + ((n * OC + o) * OH + row + r) * OW + col;
          for (int p = 0; p < pw; ++p) dst[p] = src[(r * pw + p) * kBlock] + bo;
        }
      }
    }
  };
  const int64_t items = s.N * nb * strips.count;
  if (!ThreadPool::in_parallel() && ThreadPool::global().num_threads() > 1 && items > 1)
    ThreadPool::global().parallel_for_balanced(items, 1, run_items);
  else
    run_items(0, items);
  return true;
}

}  // namespace fd::kernels::d3
