// Multi-tensor optimizer kernels. A launch covers up to kMaxTensors parameters:
// their pointers, sizes and the prefix sum of their block counts travel in a
// __grid_constant__ table (kernel argument space, < 4 KiB), so nothing is copied
// to the device and the host never waits. Each block finds its tensor by binary
// search and updates one tile of kTile elements.
//
// Gradient clipping stays on the device: prepare_grads writes one (Σg², non-finite
// count) partial per block into scratch, a single block sums them in index order
// (deterministic) and writes the stats; the update kernels read the clip scale
// from there. The update arithmetic is the scalar CPU reference's, op by op,
// with the _rn intrinsics so the compiler does not contract it into FMAs.
#include <algorithm>
#include <cmath>

#include "cuda/block_reduce.cuh"
#include "cuda/common.cuh"
#include "cuda/optim.h"

namespace fd::cuda {
namespace {

constexpr int kMaxTensors = 64;
constexpr int kThreads = 256, kPer = 16;
constexpr int64_t kTile = int64_t(kThreads) * kPer;
constexpr int64_t kMaxBlocksPerLaunch = int64_t(1) << 30;

struct Table {
  int count;
  int64_t block_start[kMaxTensors + 1];  // tensor t owns blocks [block_start[t], block_start[t + 1])
  int64_t n[kMaxTensors];
  float* p[kMaxTensors];
  float* g[kMaxTensors];
  float* s1[kMaxTensors];
  float* s2[kMaxTensors];
};
static_assert(sizeof(Table) < 3800, "kernel arguments must stay under 4 KiB");

// The tensor that owns this block, and the block's element range in it.
struct Tile {
  int t;
  int64_t begin, end;
};
__device__ __forceinline__ Tile find_tile(const Table& tab) {
  const int64_t blk = blockIdx.x;
  int lo = 0, hi = tab.count - 1;
  while (lo < hi) {  // the last t with block_start[t] <= blk
    const int mid = (lo + hi + 1) / 2;
    if (tab.block_start[mid] <= blk) lo = mid;
    else hi = mid - 1;
  }
  const int64_t begin = (blk - tab.block_start[lo]) * kTile;
  return {lo, begin, begin + kTile < tab.n[lo] ? begin + kTile : tab.n[lo]};
}

// Calls launch(table, blocks, first_block) for groups of tensors (empty ones skipped).
template <class F>
int64_t for_each_table(const std::vector<OptimTensor>& tensors, F&& launch) {
  Table tab{};
  int64_t blocks = 0, total = 0;
  auto flush = [&] {
    if (tab.count == 0) return;
    launch(tab, blocks, total);
    total += blocks;
    tab = Table{};
    blocks = 0;
  };
  for (const OptimTensor& x : tensors) {
    if (x.n <= 0) continue;
    const int64_t nb = (x.n + kTile - 1) / kTile;
    if (tab.count == kMaxTensors || (tab.count > 0 && blocks + nb > kMaxBlocksPerLaunch)) flush();
    const int t = tab.count++;
    tab.block_start[t] = blocks;
    tab.n[t] = x.n, tab.p[t] = x.param, tab.g[t] = x.grad, tab.s1[t] = x.s1, tab.s2[t] = x.s2;
    blocks += nb;
    tab.block_start[t + 1] = blocks;
  }
  flush();
  return total;
}

int64_t count_blocks(const std::vector<OptimTensor>& tensors) {
  int64_t total = 0;
  for (const OptimTensor& x : tensors)
    if (x.n > 0) total += (x.n + kTile - 1) / kTile;
  return total;
}

// ---------------------------------------------------------------- clipping statistics
// Per block: sanitizes (optionally) and writes Σ g² (double) and the non-finite count.
__global__ void __launch_bounds__(kThreads)
    grad_partials(const __grid_constant__ Table tab, bool sanitize, int64_t first_block, double* __restrict__ part_ss,
                  double* __restrict__ part_bad) {
  __shared__ double red[32];
  const Tile tile = find_tile(tab);
  float* g = tab.g[tile.t];
  float v[kPer];  // all loads issued before any use
#pragma unroll
  for (int r = 0; r < kPer; ++r) {
    const int64_t j = tile.begin + threadIdx.x + r * kThreads;
    v[r] = j < tile.end ? g[j] : 0.f;
  }
  double ss = 0.0, bad = 0.0;
#pragma unroll
  for (int r = 0; r < kPer; ++r) {
    if (sanitize && !isfinite(v[r])) {  // never a padding lane (0 is finite)
      g[tile.begin + threadIdx.x + r * kThreads] = v[r] = 0.f;
      bad += 1.0;
    }
    ss = fma(double(v[r]), double(v[r]), ss);
  }
  ss = block_sum(ss, red);
  bad = block_sum(bad, red);
  if (threadIdx.x == 0) part_ss[first_block + blockIdx.x] = ss, part_bad[first_block + blockIdx.x] = bad;
}

// One block: Σ of the partials in a fixed order, then (norm, scale, count).
__global__ void __launch_bounds__(1024)
    grad_stats(const double* __restrict__ part_ss, const double* __restrict__ part_bad, int64_t parts, float max_norm,
               float* __restrict__ stats) {
  __shared__ double red[32];
  double ss = 0.0, bad = 0.0;
  for (int64_t k = threadIdx.x; k < parts; k += blockDim.x) ss += part_ss[k], bad += part_bad[k];
  ss = block_sum(ss, red);
  bad = block_sum(bad, red);
  if (threadIdx.x == 0) {
    const double norm = sqrt(ss);
    float scale = 1.f;
    if (max_norm > 0.f && norm > max_norm) scale = float(double(max_norm) / (norm + 1e-6));
    stats[0] = float(norm), stats[1] = scale, stats[2] = float(bad);
  }
}

// ---------------------------------------------------------------- updates
// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= (lr/c1)·m / (sqrt(v/c2) + eps),
// with AdamW's p·(1 − lr·wd) or Adam's g + wd·p first.
__global__ void __launch_bounds__(kThreads)
    adam_kernel(const __grid_constant__ Table tab, AdamParams h, const float* __restrict__ scale_dev) {
  const Tile tile = find_tile(tab);
  float* param = tab.p[tile.t];
  const float* grad = tab.g[tile.t];
  float* m = tab.s1[tile.t];
  float* v = tab.s2[tile.t];
  const float gs = scale_dev ? *scale_dev : h.grad_scale;
  const float step = __fdiv_rn(h.lr, h.bias_c1), inv_c2 = __fdiv_rn(1.f, h.bias_c2);
  const float decay = __fsub_rn(1.f, __fmul_rn(h.lr, h.weight_decay));
  const float c1 = __fsub_rn(1.f, h.beta1), c2 = __fsub_rn(1.f, h.beta2);
  const bool use_m = m && h.beta1 != 0.f;
#pragma unroll 4
  for (int r = 0; r < kPer; ++r) {
    const int64_t j = tile.begin + threadIdx.x + r * kThreads;
    if (j >= tile.end) break;
    float w = param[j];
    float g = __fmul_rn(grad[j], gs);
    if (h.decoupled) w = __fmul_rn(w, decay);
    else g = __fadd_rn(g, __fmul_rn(h.weight_decay, w));
    const float mi = use_m ? __fadd_rn(__fmul_rn(h.beta1, m[j]), __fmul_rn(c1, g)) : g;
    const float vi = __fadd_rn(__fmul_rn(h.beta2, v[j]), __fmul_rn(__fmul_rn(c2, g), g));
    if (m) m[j] = mi;
    v[j] = vi;
    const float den = __fadd_rn(__fsqrt_rn(__fmul_rn(vi, inv_c2)), h.eps);
    param[j] = __fsub_rn(w, __fdiv_rn(__fmul_rn(step, mi), den));
  }
}

// g = s·grad + wd·p; buf = μ·buf + g; p −= lr·(nesterov ? g + μ·buf : buf) (buf skipped when μ = 0).
__global__ void __launch_bounds__(kThreads)
    sgd_kernel(const __grid_constant__ Table tab, float lr, float momentum, float weight_decay, bool nesterov,
               float grad_scale, const float* __restrict__ scale_dev) {
  const Tile tile = find_tile(tab);
  float* param = tab.p[tile.t];
  const float* grad = tab.g[tile.t];
  float* buf = tab.s1[tile.t];
  const float gs = scale_dev ? *scale_dev : grad_scale;
  const bool use_buf = momentum != 0.f && buf;
#pragma unroll 4
  for (int r = 0; r < kPer; ++r) {
    const int64_t j = tile.begin + threadIdx.x + r * kThreads;
    if (j >= tile.end) break;
    const float w = param[j];
    const float g = __fadd_rn(__fmul_rn(grad[j], gs), __fmul_rn(weight_decay, w));
    float upd = g;
    if (use_buf) {
      const float bv = __fadd_rn(__fmul_rn(momentum, buf[j]), g);
      buf[j] = bv;
      upd = nesterov ? __fadd_rn(g, __fmul_rn(momentum, bv)) : bv;
    }
    param[j] = __fsub_rn(w, __fmul_rn(lr, upd));
  }
}

// ema = decay·ema + (1 − decay)·param (param in the table's grad slot).
__global__ void __launch_bounds__(kThreads) ema_kernel(const __grid_constant__ Table tab, float decay) {
  const Tile tile = find_tile(tab);
  float* e = tab.p[tile.t];
  const float* param = tab.g[tile.t];
  const float c = __fsub_rn(1.f, decay);
#pragma unroll 4
  for (int r = 0; r < kPer; ++r) {
    const int64_t j = tile.begin + threadIdx.x + r * kThreads;
    if (j >= tile.end) break;
    e[j] = __fadd_rn(__fmul_rn(decay, e[j]), __fmul_rn(c, param[j]));
  }
}

}  // namespace

void prepare_grads(const std::vector<OptimTensor>& tensors, bool sanitize, float max_norm, float* stats) {
  const int64_t parts = count_blocks(tensors);
  Scratch scratch(size_t(2 * std::max<int64_t>(parts, 1)) * sizeof(double), "optimizer");
  double* part_ss = scratch.get<double>();
  double* part_bad = part_ss + parts;
  for_each_table(tensors, [&](const Table& tab, int64_t blocks, int64_t first) {
    grad_partials<<<unsigned(blocks), kThreads, 0, stream()>>>(tab, sanitize, first, part_ss, part_bad);
    check_launch("optimizer");
  });
  grad_stats<<<1, 1024, 0, stream()>>>(part_ss, part_bad, parts, max_norm, stats);
  check_launch("optimizer");
}

void adam_multi(const std::vector<OptimTensor>& tensors, const AdamParams& p, const float* grad_scale) {
  for_each_table(tensors, [&](const Table& tab, int64_t blocks, int64_t) {
    adam_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(tab, p, grad_scale);
    check_launch("adam");
  });
}

void sgd_multi(const std::vector<OptimTensor>& tensors, float lr, float momentum, float weight_decay, bool nesterov,
               float grad_scale, const float* grad_scale_device) {
  for_each_table(tensors, [&](const Table& tab, int64_t blocks, int64_t) {
    sgd_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(tab, lr, momentum, weight_decay, nesterov, grad_scale,
                                                             grad_scale_device);
    check_launch("sgd");
  });
}

void ema_multi(const std::vector<OptimTensor>& tensors, float decay) {
  for_each_table(tensors, [&](const Table& tab, int64_t blocks, int64_t) {
    ema_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(tab, decay);
    check_launch("ema");
  });
}

void adam_step(int64_t n, float* param, const float* grad, float* m, float* v, const AdamParams& p) {
  adam_multi({{param, const_cast<float*>(grad), m, v, n}}, p, nullptr);
}

void sgd_step(int64_t n, float* param, const float* grad, float* buf, float lr, float momentum, float weight_decay,
              bool nesterov, float grad_scale) {
  sgd_multi({{param, const_cast<float*>(grad), buf, nullptr, n}}, lr, momentum, weight_decay, nesterov, grad_scale,
            nullptr);
}

void ema_update(int64_t n, float* ema, const float* param, float decay) {
  ema_multi({{ema, const_cast<float*>(param), nullptr, nullptr, n}}, decay);
}

}  // namespace fd::cuda
