// Group norm (optionally fused with SiLU), layer norm and softmax on the GPU.
//
// Group norm works on chunks of one (n, g) group so that even a batch of one image
// fills the GPU: partial statistics per chunk (two-pass within the chunk, from
// registers), merged per group with Chan's parallel formula in a fixed order
// (deterministic), then an elementwise pass over all chunks. The backward pass
// reduces per-(n, c) sums first, then per-group coefficients, then writes gx; the
// affine gradients are Σ_n of the per-(n, c) sums in order (no float atomics).
//
// Layer norm and softmax give one row to a warp (D <= 1024, eight rows per block)
// or to a whole block, and keep the row in registers between passes.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/common.cuh"
#include "cuda/norm.h"

namespace fd::cuda {
namespace {

// ---------------------------------------------------------------- group norm
constexpr int kGnThreads = 256;
constexpr int kGnPer = 8;                          // elements per thread per chunk
constexpr int64_t kGnChunk = kGnThreads * kGnPer;  // elements of a group per block

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

struct GnShape {
  int64_t C, HW, G, Cg, cnt, chunks;  // cnt = Cg·HW values per group, chunks = ceil(cnt / kGnChunk)
};

GnShape gn_shape(int64_t C, int64_t HW, int64_t G) {
  const int64_t Cg = C / G, cnt = Cg * HW;
  return {C, HW, G, Cg, cnt, (cnt + kGnChunk - 1) / kGnChunk};
}

// Per chunk: (mean, M2 = Σ(x − mean)²) of its values, two-pass from registers.
__global__ void __launch_bounds__(kGnThreads)
    gn_partial_stats(const float* __restrict__ x, GnShape s, float2* __restrict__ part) {
  __shared__ float red[32];
  const int64_t blk = blockIdx.x, grp = blk / s.chunks, begin = (blk % s.chunks) * kGnChunk;
  const int m = int(min64(kGnChunk, s.cnt - begin));
  const float* xs = x + grp * s.cnt + begin;
  float v[kGnPer], sum = 0.f;
#pragma unroll
  for (int r = 0; r < kGnPer; ++r) {
    const int j = threadIdx.x + r * kGnThreads;
    v[r] = j < m ? xs[j] : 0.f;
    sum += v[r];
  }
  const float mean = block_sum(sum, red) / float(m);
  float q = 0.f;
#pragma unroll
  for (int r = 0; r < kGnPer; ++r) {
    const float d = v[r] - mean;
    if (threadIdx.x + r * kGnThreads < m) q += d * d;
  }
  const float m2 = block_sum(q, red);
  if (threadIdx.x == 0) part[blk] = make_float2(mean, m2);
}

// Chan et al.'s pairwise update of (count, mean, M2).
struct Moments {
  double n = 0, mean = 0, m2 = 0;
};
__device__ __forceinline__ Moments merge(Moments a, Moments b) {
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  Moments r;
  r.n = a.n + b.n;
  const double d = b.mean - a.mean;
  r.mean = a.mean + d * (b.n / r.n);
  r.m2 = a.m2 + b.m2 + d * d * (a.n * b.n / r.n);
  return r;
}

// One warp per group: merges its chunk partials (lane-strided, then a shfl_down
// tree: a fixed order) and writes mean and rstd = 1/sqrt(var + eps).
__global__ void gn_finalize_stats(const float2* __restrict__ part, GnShape s, int64_t groups, float eps,
                                  float* __restrict__ mean, float* __restrict__ rstd) {
  const int64_t grp = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (grp >= groups) return;
  Moments acc;
  for (int64_t k = lane; k < s.chunks; k += 32) {
    const float2 p = part[grp * s.chunks + k];
    acc = merge(acc, Moments{double(min64(kGnChunk, s.cnt - k * kGnChunk)), p.x, p.y});
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Moments other;
    other.n = __shfl_down_sync(kFullMask, acc.n, o);
    other.mean = __shfl_down_sync(kFullMask, acc.mean, o);
    other.m2 = __shfl_down_sync(kFullMask, acc.m2, o);
    acc = merge(acc, other);
  }
  if (lane == 0) {
    const double var = acc.n > 0 ? acc.m2 / acc.n : 0.0;
    mean[grp] = float(acc.mean);
    rstd[grp] = float(1.0 / sqrt(var + double(eps)));
  }
}

// Walks the elements j0, j0 + kGnThreads, ... of a group while tracking the
// channel (j / HW) without a division per element.
struct ChannelCursor {
  int64_t c, hw, q, rem, HW;
  __device__ ChannelCursor(int64_t j0, int64_t HW_) : HW(HW_) {
    c = j0 / HW, hw = j0 - c * HW, q = kGnThreads / HW, rem = kGnThreads - q * HW;
  }
  __device__ void advance() {
    c += q, hw += rem;
    if (hw >= HW) hw -= HW, ++c;
  }
};

// SiLU and its derivative in the CPU kernels' form: e = exp(-t) capped so that it
// stays finite, s = 1/(1 + e), 1 − s = e·s (or 1 − s when e > 1).
__device__ __forceinline__ float silu_sigmoid(float t, float* one_minus) {
  const float e = expf(fminf(87.f, -t));
  const float s = 1.f / (1.f + e);
  *one_minus = e > 1.f ? 1.f - s : e * s;
  return s;
}

// y = (x − mean)·(rstd·γ_c) + β_c, then SiLU.
__global__ void __launch_bounds__(kGnThreads)
    gn_apply(const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta, bool silu,
             const float* __restrict__ mean, const float* __restrict__ rstd, GnShape s, float* __restrict__ y) {
  const int64_t blk = blockIdx.x, grp = blk / s.chunks, begin = (blk % s.chunks) * kGnChunk;
  const int64_t end = min64(s.cnt, begin + kGnChunk), c0 = (grp % s.G) * s.Cg;
  const float mu = mean[grp], rs = rstd[grp];
  const float* xs = x + grp * s.cnt;
  float* ys = y + grp * s.cnt;
  float v[kGnPer];  // all loads issued before any use
#pragma unroll
  for (int r = 0; r < kGnPer; ++r) {
    const int64_t j = begin + threadIdx.x + r * kGnThreads;
    v[r] = j < end ? xs[j] : 0.f;
  }
  ChannelCursor cur(begin + threadIdx.x, s.HW);
#pragma unroll
  for (int r = 0; r < kGnPer; ++r, cur.advance()) {
    const int64_t j = begin + threadIdx.x + r * kGnThreads;
    if (j >= end) break;
    const int64_t c = c0 + cur.c;
    const float sc = rs * (gamma ? gamma[c] : 1.f), bt = beta ? beta[c] : 0.f;
    float t = fmaf(v[r] - mu, sc, bt);
    if (silu) {
      float unused;
      t *= silu_sigmoid(t, &unused);
    }
    ys[j] = t;
  }
}

// Gradient w.r.t. the affine output: gy, times SiLU'(t) = s·(1 + t·(1 − s)) when fused.
__device__ __forceinline__ float gn_dy(float g, float xh, float gm, float bt, bool silu) {
  if (!silu) return g;
  const float t = fmaf(xh, gm, bt);
  float oms;
  const float s = silu_sigmoid(t, &oms);
  return g * (s * fmaf(t, oms, 1.f));
}

// Per (n, c) row of HW values: ds = Σ dy·x̂, db = Σ dy.
template <int kTeam, int kBlock>
__global__ void __launch_bounds__(kBlock)
    gn_bwd_channel_sums(const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                        bool silu, const float* __restrict__ mean, const float* __restrict__ rstd,
                        const float* __restrict__ gy, GnShape s, int64_t rows, float* __restrict__ ds,
                        float* __restrict__ db) {
  using Team = RowTeam<kTeam, kBlock>;
  __shared__ float red[32];
  const int64_t row = Team::row();
  if (row >= rows) return;  // only a warp team can get here (exact grid for block teams)
  const int64_t c = row % s.C, grp = (row / s.C) * s.G + c / s.Cg;
  const float mu = mean[grp], rs = rstd[grp];
  const float gm = gamma ? gamma[c] : 1.f, bt = beta ? beta[c] : 0.f;
  const float* xr = x + row * s.HW;
  const float* gr = gy + row * s.HW;
  float sum_s = 0.f, sum_b = 0.f;
  for (int64_t i = Team::lane(); i < s.HW; i += kTeam) {
    const float xh = (xr[i] - mu) * rs;
    const float d = gn_dy(gr[i], xh, gm, bt, silu);
    sum_b += d;
    sum_s = fmaf(d, xh, sum_s);
  }
  sum_s = Team::sum(sum_s, red);
  sum_b = Team::sum(sum_b, red);
  if (Team::lane() == 0) ds[row] = sum_s, db[row] = sum_b;
}

// One warp per group: gx = rstd·(dy·γ − ma − x̂·mb) with ma = Σ_c db·γ / cnt and
// mb = Σ_c ds·γ / cnt, stored as gx = dy·(rstd·γ) + (x − mean)·Cc + B.
__global__ void gn_bwd_coefficients(const float* __restrict__ ds, const float* __restrict__ db,
                                    const float* __restrict__ gamma, const float* __restrict__ rstd, GnShape s,
                                    int64_t groups, float2* __restrict__ coef) {
  const int64_t grp = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (grp >= groups) return;
  const int64_t c0 = (grp % s.G) * s.Cg, row0 = (grp / s.G) * s.C + c0;
  float a = 0.f, b = 0.f;
  for (int64_t c = lane; c < s.Cg; c += 32) {
    const float gm = gamma ? gamma[c0 + c] : 1.f;
    a = fmaf(db[row0 + c], gm, a);
    b = fmaf(ds[row0 + c], gm, b);
  }
  a = warp_sum(a);
  b = warp_sum(b);
  if (lane == 0) {
    const float inv = s.cnt > 0 ? 1.f / float(s.cnt) : 0.f, rs = rstd[grp];
    coef[grp] = make_float2(-rs * (a * inv), -rs * rs * (b * inv));  // (B, Cc)
  }
}

__global__ void __launch_bounds__(kGnThreads)
    gn_bwd_dx(const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta, bool silu,
              const float* __restrict__ mean, const float* __restrict__ rstd, const float2* __restrict__ coef,
              const float* __restrict__ gy, GnShape s, float* __restrict__ gx) {
  const int64_t blk = blockIdx.x, grp = blk / s.chunks, begin = (blk % s.chunks) * kGnChunk;
  const int64_t end = min64(s.cnt, begin + kGnChunk), c0 = (grp % s.G) * s.Cg;
  const float mu = mean[grp], rs = rstd[grp];
  const float2 k = coef[grp];
  const float* xs = x + grp * s.cnt;
  const float* gs = gy + grp * s.cnt;
  float* os = gx + grp * s.cnt;
  float xv[kGnPer], gv[kGnPer];  // all loads issued before any use
#pragma unroll
  for (int r = 0; r < kGnPer; ++r) {
    const int64_t j = begin + threadIdx.x + r * kGnThreads;
    xv[r] = j < end ? xs[j] : 0.f;
    gv[r] = j < end ? gs[j] : 0.f;
  }
  ChannelCursor cur(begin + threadIdx.x, s.HW);
#pragma unroll
  for (int r = 0; r < kGnPer; ++r, cur.advance()) {
    const int64_t j = begin + threadIdx.x + r * kGnThreads;
    if (j >= end) break;
    const int64_t c = c0 + cur.c;
    const float gm = gamma ? gamma[c] : 1.f, bt = beta ? beta[c] : 0.f;
    const float xc = xv[r] - mu;
    const float d = gn_dy(gv[r], xc * rs, gm, bt, silu);
    os[j] = fmaf(d, rs * gm, fmaf(xc, k.y, k.x));
  }
}

// γ and β gradients: Σ over n of the per-(n, c) sums, in order of n.
__global__ void gn_bwd_affine(const float* __restrict__ ds, const float* __restrict__ db, int64_t N, int64_t C,
                              float* __restrict__ ggamma, float* __restrict__ gbeta) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    float sg = 0.f, sb = 0.f;
    for (int64_t n = 0; n < N; ++n) sg += ds[n * C + c], sb += db[n * C + c];
    if (ggamma) ggamma[c] = sg;
    if (gbeta) gbeta[c] = sb;
  }
}

unsigned warp_per_item_blocks(int64_t items) { return unsigned((items + 7) / 8); }  // 256 threads = 8 warps

// ---------------------------------------------------------------- layer norm
// One team member's share of a row: elements lane, lane + kTeam, ... Held in
// registers when kPer > 0 (the dispatch guarantees D <= kTeam·kPer: one read of
// the row however many passes the kernel makes), read from memory each pass when
// kPer = 0 (very long rows).
template <int kTeam, int kPer>
struct RowVals {
  float v[kPer > 0 ? kPer : 1];
  __device__ void load(const float* p, int64_t D, int lane) {
    if constexpr (kPer > 0) {
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        const int64_t i = lane + int64_t(k) * kTeam;
        v[k] = i < D ? p[i] : 0.f;
      }
    }
  }
  // f(value, i) for each of this member's elements i < D.
  template <class F>
  __device__ void each(const float* p, int64_t D, int lane, F&& f) const {
    if constexpr (kPer > 0) {
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        const int64_t i = lane + int64_t(k) * kTeam;
        if (i < D) f(v[k], i);
      }
    } else {
      for (int64_t i = lane; i < D; i += kTeam) f(p[i], i);
    }
  }
};

template <int kTeam, int kBlock, int kPer>
__global__ void __launch_bounds__(kBlock)
    ln_forward(int64_t M, int64_t D, float eps, const float* __restrict__ x, const float* __restrict__ gamma,
               const float* __restrict__ beta, float* __restrict__ y, float* __restrict__ mean_out,
               float* __restrict__ rstd_out) {
  using Team = RowTeam<kTeam, kBlock>;
  __shared__ float red[32];
  const int64_t row = Team::row();
  if (row >= M) return;
  const int lane = Team::lane();
  const float* xr = x + row * D;
  float* yr = y + row * D;
  RowVals<kTeam, kPer> xs;
  xs.load(xr, D, lane);
  float s = 0.f;
  xs.each(xr, D, lane, [&](float v, int64_t) { s += v; });
  const float mean = Team::sum(s, red) / float(D);
  float q = 0.f;
  xs.each(xr, D, lane, [&](float v, int64_t) { q = fmaf(v - mean, v - mean, q); });
  // 1/sqrt(var + eps) in double, rounded once (as on the CPU: equal when var is).
  const float rstd = float(1.0 / sqrt(double(Team::sum(q, red) / float(D)) + double(eps)));
  if (lane == 0) {
    if (mean_out) mean_out[row] = mean;
    if (rstd_out) rstd_out[row] = rstd;
  }
  xs.each(xr, D, lane, [&](float v, int64_t i) {
    float t = (v - mean) * rstd;
    if (gamma) t *= gamma[i];
    if (beta) t += beta[i];
    yr[i] = t;
  });
}

// gx = rstd·d − rstd·ma − (x − mean)·rstd²·mb with d = gy·γ, ma = mean(d), mb = mean(d·x̂).
// Each member reads its own elements before writing them, so gx may alias gy.
template <int kTeam, int kBlock, int kPer>
__global__ void __launch_bounds__(kBlock)
    ln_backward(int64_t M, int64_t D, const float* x, const float* __restrict__ gamma, const float* __restrict__ mean,
                const float* __restrict__ rstd, const float* gy, float* gx) {
  using Team = RowTeam<kTeam, kBlock>;
  __shared__ float red[32];
  const int64_t row = Team::row();
  if (row >= M) return;
  const int lane = Team::lane();
  const float* xr = x + row * D;
  const float* gr = gy + row * D;
  float* o = gx + row * D;
  const float mu = mean[row], rs = rstd[row];
  RowVals<kTeam, kPer> xs, gs;
  xs.load(xr, D, lane);
  gs.load(gr, D, lane);
  float sa = 0.f;
  gs.each(gr, D, lane, [&](float g, int64_t i) { sa += gamma ? g * gamma[i] : g; });
  float sb = 0.f;
  if constexpr (kPer > 0) {
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int64_t i = lane + int64_t(k) * kTeam;
      if (i < D) sb = fmaf(gamma ? gs.v[k] * gamma[i] : gs.v[k], xs.v[k] - mu, sb);
    }
  } else {
    for (int64_t i = lane; i < D; i += kTeam) sb = fmaf(gamma ? gr[i] * gamma[i] : gr[i], xr[i] - mu, sb);
  }
  sa = Team::sum(sa, red);
  sb = Team::sum(sb, red);
  const float inv = 1.f / float(D);
  const float B = -rs * (sa * inv), Cc = -rs * rs * (sb * rs * inv);
  if constexpr (kPer > 0) {
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int64_t i = lane + int64_t(k) * kTeam;
      if (i < D) o[i] = fmaf(gamma ? gs.v[k] * gamma[i] : gs.v[k], rs, fmaf(xs.v[k] - mu, Cc, B));
    }
  } else {
    for (int64_t i = lane; i < D; i += kTeam)
      o[i] = fmaf(gamma ? gr[i] * gamma[i] : gr[i], rs, fmaf(xr[i] - mu, Cc, B));
  }
}

// γ/β gradients, stage 1: block (32 columns × 8 row lanes) sums one chunk of rows
// per column; partial sums land in part_g/part_b [chunk][D].
constexpr int kLnCols = 32, kLnRowLanes = 8;
__global__ void __launch_bounds__(kLnCols* kLnRowLanes)
    ln_param_partial(int64_t M, int64_t D, int64_t rows_per_chunk, const float* __restrict__ x,
                     const float* __restrict__ mean, const float* __restrict__ rstd, const float* __restrict__ gy,
                     float* __restrict__ part_g, float* __restrict__ part_b) {
  __shared__ float sg[kLnRowLanes][kLnCols + 1], sb[kLnRowLanes][kLnCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col = int64_t(blockIdx.x) * kLnCols + tx, chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk, r1 = min64(M, r0 + rows_per_chunk);
  float ag = 0.f, ab = 0.f;
  if (col < D) {
    for (int64_t r = r0 + ty; r < r1; r += kLnRowLanes) {
      const float g = gy[r * D + col];
      ag = fmaf(g, (x[r * D + col] - mean[r]) * rstd[r], ag);
      ab += g;
    }
  }
  sg[ty][tx] = ag, sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && col < D) {
    for (int k = 1; k < kLnRowLanes; ++k) ag += sg[k][tx], ab += sb[k][tx];
    part_g[chunk * D + col] = ag;
    part_b[chunk * D + col] = ab;
  }
}

// Stage 2: Σ over chunks, in order.
__global__ void ln_param_final(int64_t D, int64_t chunks, const float* __restrict__ part_g,
                               const float* __restrict__ part_b, float* __restrict__ ggamma,
                               float* __restrict__ gbeta) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < D; d += int64_t(gridDim.x) * blockDim.x) {
    float g = 0.f, b = 0.f;
    for (int64_t k = 0; k < chunks; ++k) g += part_g[k * D + d], b += part_b[k * D + d];
    if (ggamma) ggamma[d] = g;
    if (gbeta) gbeta[d] = b;
  }
}

// ---------------------------------------------------------------- softmax
// y = exp(x − max)/Σ exp(x − max) or x − max − log Σ exp(x − max). The max ignores
// NaN, but a NaN input makes the sum NaN, so the whole row is NaN (as on the CPU).
template <int kTeam, int kBlock, int kPer>
__global__ void __launch_bounds__(kBlock)
    softmax_fwd(int64_t M, int64_t D, const float* __restrict__ x, float* __restrict__ y, bool log) {
  using Team = RowTeam<kTeam, kBlock>;
  __shared__ float red[32];
  const int64_t row = Team::row();
  if (row >= M) return;
  const int lane = Team::lane();
  const float* xr = x + row * D;
  float* yr = y + row * D;
  RowVals<kTeam, kPer> xs;
  xs.load(xr, D, lane);
  float mx = -INFINITY;
  xs.each(xr, D, lane, [&](float v, int64_t) { mx = fmaxf(mx, v); });
  mx = Team::max(mx, red);
  float s = 0.f;
  xs.each(xr, D, lane, [&](float v, int64_t) { s += expf(v - mx); });
  s = Team::sum(s, red);
  if (log) {
    const float off = mx + logf(s);
    xs.each(xr, D, lane, [&](float v, int64_t i) { yr[i] = v - off; });
  } else {
    const float inv = 1.f / s;
    xs.each(xr, D, lane, [&](float v, int64_t i) { yr[i] = expf(v - mx) * inv; });
  }
}

// gx = y·(gy − Σ gy·y) (softmax) or gy − exp(y)·Σ gy (log-softmax). gx may alias gy.
template <int kTeam, int kBlock, int kPer>
__global__ void __launch_bounds__(kBlock)
    softmax_bwd(int64_t M, int64_t D, const float* __restrict__ y, const float* gy, float* gx, bool log) {
  using Team = RowTeam<kTeam, kBlock>;
  __shared__ float red[32];
  const int64_t row = Team::row();
  if (row >= M) return;
  const int lane = Team::lane();
  const float* yr = y + row * D;
  const float* gr = gy + row * D;
  float* o = gx + row * D;
  RowVals<kTeam, kPer> ys, gs;
  ys.load(yr, D, lane);
  gs.load(gr, D, lane);
  float s = 0.f;
  if constexpr (kPer > 0) {
#pragma unroll
    for (int k = 0; k < kPer; ++k)
      if (lane + int64_t(k) * kTeam < D) s = log ? s + gs.v[k] : fmaf(gs.v[k], ys.v[k], s);
  } else {
    for (int64_t i = lane; i < D; i += kTeam) s = log ? s + gr[i] : fmaf(gr[i], yr[i], s);
  }
  s = Team::sum(s, red);
  if constexpr (kPer > 0) {
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int64_t i = lane + int64_t(k) * kTeam;
      if (i < D) o[i] = log ? fmaf(-expf(ys.v[k]), s, gs.v[k]) : ys.v[k] * (gs.v[k] - s);
    }
  } else {
    for (int64_t i = lane; i < D; i += kTeam) o[i] = log ? fmaf(-expf(yr[i]), s, gr[i]) : yr[i] * (gr[i] - s);
  }
}

// Row kernels: a warp per row up to D = 1024 (eight rows per block), a 128-thread
// block up to 4096, a 512-thread block beyond; the row stays in registers up to
// D = 8192 (at most 32 values per thread).
constexpr int64_t kWarpRowMax = 1024;  // also: channel rows of the group-norm backward

#define FD_ROWS_LAUNCH(kernel, team, block, per, M, ...) \
  kernel<team, block, per><<<RowTeam<team, block>::blocks(M), block, 0, stream()>>>(__VA_ARGS__)

#define FD_LAUNCH_ROWS(kernel, M, D, ...)                                                       \
  do {                                                                                          \
    const int64_t d_ = (D);                                                                     \
    if (d_ <= 32) FD_ROWS_LAUNCH(kernel, 32, 256, 1, M, __VA_ARGS__);                           \
    else if (d_ <= 64) FD_ROWS_LAUNCH(kernel, 32, 256, 2, M, __VA_ARGS__);                      \
    else if (d_ <= 128) FD_ROWS_LAUNCH(kernel, 32, 256, 4, M, __VA_ARGS__);                     \
    else if (d_ <= 256) FD_ROWS_LAUNCH(kernel, 32, 256, 8, M, __VA_ARGS__);                     \
    else if (d_ <= 512) FD_ROWS_LAUNCH(kernel, 32, 256, 16, M, __VA_ARGS__);                    \
    else if (d_ <= 1024) FD_ROWS_LAUNCH(kernel, 32, 256, 32, M, __VA_ARGS__);                   \
    else if (d_ <= 2048) FD_ROWS_LAUNCH(kernel, 128, 128, 16, M, __VA_ARGS__);                  \
    else if (d_ <= 4096) FD_ROWS_LAUNCH(kernel, 128, 128, 32, M, __VA_ARGS__);                  \
    else if (d_ <= 8192) FD_ROWS_LAUNCH(kernel, 512, 512, 16, M, __VA_ARGS__);                  \
    else FD_ROWS_LAUNCH(kernel, 512, 512, 0, M, __VA_ARGS__);                                   \
  } while (0)

}  // namespace

// ---------------------------------------------------------------- entry points

void group_norm_forward(int64_t N, int64_t C, int64_t HW, int64_t G, float eps, const float* x, const float* gamma,
                        const float* beta, bool silu, float* y, float* mean, float* rstd) {
  if (N <= 0 || C <= 0 || G <= 0) return;
  const GnShape s = gn_shape(C, HW, G);
  const int64_t groups = N * G;
  if (s.chunks > 0) {
    Scratch part(size_t(groups * s.chunks) * sizeof(float2), "group_norm");
    gn_partial_stats<<<unsigned(groups * s.chunks), kGnThreads, 0, stream()>>>(x, s, part.get<float2>());
    check_launch("group_norm");
    gn_finalize_stats<<<warp_per_item_blocks(groups), 256, 0, stream()>>>(part.get<float2>(), s, groups, eps, mean,
                                                                          rstd);
    check_launch("group_norm");
    gn_apply<<<unsigned(groups * s.chunks), kGnThreads, 0, stream()>>>(x, gamma, beta, silu, mean, rstd, s, y);
    check_launch("group_norm");
  } else {  // empty groups (HW = 0): mean 0, var 0, nothing to normalize
    gn_finalize_stats<<<warp_per_item_blocks(groups), 256, 0, stream()>>>(nullptr, s, groups, eps, mean, rstd);
    check_launch("group_norm");
  }
}

void group_norm_backward(int64_t N, int64_t C, int64_t HW, int64_t G, const float* x, const float* gamma,
                         const float* beta, bool silu, const float* mean, const float* rstd, const float* gy, float* gx,
                         float* ggamma, float* gbeta) {
  if (N <= 0 || C <= 0 || G <= 0) return;
  const GnShape s = gn_shape(C, HW, G);
  const int64_t rows = N * C, groups = N * G;
  // ds | db per (n, c), then (B, Cc) per group.
  Scratch scratch(size_t(2 * rows) * sizeof(float) + size_t(groups) * sizeof(float2), "group_norm_backward");
  float* ds = scratch.get<float>();
  float* db = ds + rows;
  float2* coef = reinterpret_cast<float2*>(db + rows);  // 8-byte aligned: the block is, and 2·rows floats keep it
  if (HW <= kWarpRowMax)  // a warp per channel row, else a block
    gn_bwd_channel_sums<32, 256><<<RowTeam<32, 256>::blocks(rows), 256, 0, stream()>>>(
        x, gamma, beta, silu, mean, rstd, gy, s, rows, ds, db);
  else
    gn_bwd_channel_sums<512, 512><<<unsigned(rows), 512, 0, stream()>>>(
        x, gamma, beta, silu, mean, rstd, gy, s, rows, ds, db);
  check_launch("group_norm_backward");
  if (gx && s.chunks > 0) {
    gn_bwd_coefficients<<<warp_per_item_blocks(groups), 256, 0, stream()>>>(ds, db, gamma, rstd, s, groups, coef);
    check_launch("group_norm_backward");
    gn_bwd_dx<<<unsigned(groups * s.chunks), kGnThreads, 0, stream()>>>(x, gamma, beta, silu, mean, rstd, coef, gy, s,
                                                                         gx);
    check_launch("group_norm_backward");
  }
  if (ggamma || gbeta) {
    gn_bwd_affine<<<grid_for(C), 256, 0, stream()>>>(ds, db, N, C, ggamma, gbeta);
    check_launch("group_norm_backward");
  }
}

void layer_norm_forward(int64_t M, int64_t D, float eps, const float* x, const float* gamma, const float* beta, float* y,
                        float* mean, float* rstd) {
  if (M <= 0 || D <= 0) return;
  FD_LAUNCH_ROWS(ln_forward, M, D, M, D, eps, x, gamma, beta, y, mean, rstd);
  check_launch("layer_norm");
}

void layer_norm_backward(int64_t M, int64_t D, const float* x, const float* gamma, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* ggamma, float* gbeta) {
  if (M <= 0 || D <= 0) return;
  // Parameter gradients first: gx may alias gy.
  if (ggamma || gbeta) {
    // Enough row chunks for ~1024 blocks in all (stage 2 then adds few partials per column).
    const int64_t col_blocks = (D + kLnCols - 1) / kLnCols;
    const int64_t want = std::min<int64_t>(1024, std::max<int64_t>(1, 1024 / col_blocks));
    const int64_t rows_per_chunk = (M + want - 1) / want;
    const int64_t chunks = (M + rows_per_chunk - 1) / rows_per_chunk;
    Scratch part(size_t(2 * chunks * D) * sizeof(float), "layer_norm_backward");
    float* pg = part.get<float>();
    float* pb = pg + chunks * D;
    const dim3 grid{unsigned(col_blocks), unsigned(chunks)};
    ln_param_partial<<<grid, dim3(kLnCols, kLnRowLanes), 0, stream()>>>(M, D, rows_per_chunk, x, mean, rstd, gy, pg,
                                                                         pb);
    check_launch("layer_norm_backward");
    ln_param_final<<<grid_for(D), 256, 0, stream()>>>(D, chunks, pg, pb, ggamma, gbeta);
    check_launch("layer_norm_backward");
  }
  if (gx) {
    FD_LAUNCH_ROWS(ln_backward, M, D, M, D, x, gamma, mean, rstd, gy, gx);
    check_launch("layer_norm_backward");
  }
}

void softmax_forward(int64_t M, int64_t D, const float* x, float* y, bool log) {
  if (M <= 0 || D <= 0) return;
  FD_LAUNCH_ROWS(softmax_fwd, M, D, M, D, x, y, log);
  check_launch(log ? "log_softmax" : "softmax");
}

void softmax_backward(int64_t M, int64_t D, const float* y, const float* gy, float* gx, bool log) {
  if (M <= 0 || D <= 0) return;
  FD_LAUNCH_ROWS(softmax_bwd, M, D, M, D, y, gy, gx, log);
  check_launch(log ? "log_softmax_backward" : "softmax_backward");
}

}  // namespace fd::cuda
