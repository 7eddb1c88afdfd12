// MSE and SiD losses. Reductions: each block sums one tile in double and writes a
// partial; a second kernel adds the partials in index order (deterministic, and
// the tiles keep every sample's work spread over many blocks).
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/common.cuh"
#include "cuda/loss.h"

namespace fd::cuda {
namespace {

constexpr int kThreads = 256, kPer = 16;
constexpr int64_t kTile = int64_t(kThreads) * kPer;

int64_t tiles(int64_t n) { return (n + kTile - 1) / kTile; }

// ---------------------------------------------------------------- MSE
__global__ void __launch_bounds__(kThreads)
    mse_partial(int64_t n, const float* __restrict__ a, const float* __restrict__ b, double* __restrict__ part) {
  __shared__ double red[32];
  const int64_t begin = int64_t(blockIdx.x) * kTile;
  double s = 0.0;
#pragma unroll 4
  for (int r = 0; r < kPer; ++r) {
    const int64_t i = begin + threadIdx.x + r * kThreads;
    if (i >= n) break;
    const double d = a[i] - b[i];  // the difference in float, squared in double (as on the CPU)
    s = fma(d, d, s);
  }
  s = block_sum(s, red);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void __launch_bounds__(1024)
    mse_final(int64_t n, int64_t parts, const double* __restrict__ part, bool mean, float* __restrict__ y) {
  __shared__ double red[32];
  double s = 0.0;
  for (int64_t k = threadIdx.x; k < parts; k += blockDim.x) s += part[k];
  s = block_sum(s, red);
  if (threadIdx.x == 0) y[0] = float(mean ? s / double(n > 1 ? n : 1) : s);
}

__global__ void mse_elementwise(int64_t n, const float* __restrict__ a, const float* __restrict__ b,
                                float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float d = a[i] - b[i];
    y[i] = d * d;
  }
}

// ga = (a − b)·(per_element ? 2·gy[i] : gy[0]·k)
__global__ void mse_backward_kernel(int64_t n, const float* __restrict__ a, const float* __restrict__ b,
                                    const float* __restrict__ gy, bool per_element, float k, float* __restrict__ ga) {
  const float g0 = per_element ? 0.f : gy[0] * k;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    ga[i] = (a[i] - b[i]) * (per_element ? 2.f * gy[i] : g0);
}

// ---------------------------------------------------------------- SiD
struct SidPartial {
  double bad, abs_sum, total;
};

// Block (b, tile): non-finite count, Σ|x_g − r| and Σ[(1 − α)(r − f)² + (r − f)(f − x_g)] in double.
__global__ void __launch_bounds__(kThreads)
    sid_partial(int64_t P, int64_t tiles_per_sample, float alpha, const float* __restrict__ r,
                const float* __restrict__ f, const float* __restrict__ xg, SidPartial* __restrict__ part) {
  __shared__ double red[32];
  const int64_t blk = blockIdx.x, b = blk / tiles_per_sample, begin = (blk % tiles_per_sample) * kTile;
  const float* rp = r + b * P;
  const float* fp = f + b * P;
  const float* xp = xg + b * P;
  const double one_minus_alpha = 1.0 - double(alpha);
  double bad = 0.0, abs_sum = 0.0, total = 0.0;
#pragma unroll 4
  for (int k = 0; k < kPer; ++k) {
    const int64_t i = begin + threadIdx.x + k * kThreads;
    if (i >= P) break;
    const float rv = rp[i], fv = fp[i], xv = xp[i];
    if (!(isfinite(rv) && isfinite(fv) && isfinite(xv))) bad += 1.0;
    abs_sum += fabs(double(xv) - double(rv));
    const double rf = double(rv) - double(fv), fx = double(fv) - double(xv);
    total += one_minus_alpha * rf * rf + rf * fx;
  }
  bad = block_sum(bad, red);
  abs_sum = block_sum(abs_sum, red);
  total = block_sum(total, red);
  if (threadIdx.x == 0) part[blk] = SidPartial{bad, abs_sum, total};
}

// One thread per sample: partials in tile order, then w_b = 1/max(mean|x_g − r|, 1e-5).
__global__ void sid_final(int64_t B, int64_t P, int64_t tiles_per_sample, const SidPartial* __restrict__ part,
                          float* __restrict__ loss, float* __restrict__ mask, float* __restrict__ w) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x) {
    double bad = 0.0, abs_sum = 0.0, total = 0.0;
    for (int64_t k = 0; k < tiles_per_sample; ++k) {
      const SidPartial p = part[b * tiles_per_sample + k];
      bad += p.bad, abs_sum += p.abs_sum, total += p.total;
    }
    if (bad > 0.0) {
      loss[b] = 0.f, mask[b] = 0.f, w[b] = 0.f;
      continue;
    }
    const double weight = 1.0 / fmax(abs_sum / double(P > 1 ? P : 1), 1e-5);
    loss[b] = float(weight * total), mask[b] = 1.f, w[b] = float(weight);
  }
}

// Elementwise gradients; the float operations of the CPU kernel, uncontracted.
__global__ void __launch_bounds__(kThreads)
    sid_backward_kernel(int64_t P, int64_t tiles_per_sample, float alpha, const float* __restrict__ r,
                        const float* __restrict__ f, const float* __restrict__ xg, const float* __restrict__ w,
                        const float* __restrict__ gy, float* __restrict__ gr, float* __restrict__ gf,
                        float* __restrict__ gx) {
  const int64_t blk = blockIdx.x, b = blk / tiles_per_sample, begin = (blk % tiles_per_sample) * kTile;
  const float k = __fmul_rn(gy[b], w[b]);
  const float c_r = __fsub_rn(1.f, __fmul_rn(2.f, alpha)), two_alpha = __fmul_rn(2.f, alpha);
#pragma unroll 4
  for (int q = 0; q < kPer; ++q) {
    const int64_t i = begin + threadIdx.x + q * kThreads;
    if (i >= P) break;
    const int64_t o = b * P + i;
    const float rf = __fsub_rn(r[o], f[o]), rx = __fsub_rn(r[o], xg[o]);
    gr[o] = k == 0.f ? 0.f : __fmul_rn(k, __fadd_rn(rx, __fmul_rn(c_r, rf)));
    gf[o] = k == 0.f ? 0.f : __fmul_rn(k, __fsub_rn(__fmul_rn(two_alpha, rf), rx));
    gx[o] = k == 0.f ? 0.f : __fmul_rn(-k, rf);
  }
}

}  // namespace

void mse_loss_forward(int64_t n, const float* a, const float* b, float* y, bool per_element, bool mean) {
  if (per_element) {
    if (n <= 0) return;
    mse_elementwise<<<grid_for(n), 256, 0, stream()>>>(n, a, b, y);
    check_launch("mse_loss");
    return;
  }
  const int64_t parts = tiles(n);
  Scratch part(size_t(std::max<int64_t>(parts, 1)) * sizeof(double), "mse_loss");
  if (parts > 0) {
    mse_partial<<<unsigned(parts), kThreads, 0, stream()>>>(n, a, b, part.get<double>());
    check_launch("mse_loss");
  }
  mse_final<<<1, 1024, 0, stream()>>>(n, parts, part.get<double>(), mean, y);  // n = 0 writes 0
  check_launch("mse_loss");
}

void mse_loss_backward(int64_t n, const float* a, const float* b, const float* gy, float* ga, bool per_element,
                       bool mean) {
  if (n <= 0) return;
  const float k = mean ? 2.f / float(n) : 2.f;
  mse_backward_kernel<<<grid_for(n), 256, 0, stream()>>>(n, a, b, gy, per_element, k, ga);
  check_launch("mse_loss_backward");
}

void sid_loss_forward(int64_t B, int64_t P, float alpha, const float* r, const float* f, const float* xg, float* loss,
                      float* mask, float* w) {
  if (B <= 0) return;
  const int64_t per = std::max<int64_t>(1, tiles(P));  // P = 0 still gets one (empty) tile per sample
  Scratch part(size_t(B * per) * sizeof(SidPartial), "sid_loss");
  sid_partial<<<unsigned(B * per), kThreads, 0, stream()>>>(P, per, alpha, r, f, xg, part.get<SidPartial>());
  check_launch("sid_loss");
  sid_final<<<grid_for(B), 256, 0, stream()>>>(B, P, per, part.get<SidPartial>(), loss, mask, w);
  check_launch("sid_loss");
}

void sid_loss_backward(int64_t B, int64_t P, float alpha, const float* r, const float* f, const float* xg,
                       const float* w, const float* gy, float* gr, float* gf, float* gx) {
  if (B <= 0 || P <= 0) return;
  const int64_t per = tiles(P);
  sid_backward_kernel<<<unsigned(B * per), kThreads, 0, stream()>>>(P, per, alpha, r, f, xg, w, gy, gr, gf, gx);
  check_launch("sid_loss_backward");
}

}  // namespace fd::cuda
