// conv2d on the GPU: the twins of fd::kernels::conv2d_* (kernels/gemm.h), NCHW,
// weight [OC, Cg, KH, KW] with Cg = C/groups, OCg = OC/groups, KK = KH·KW,
// Kg = Cg·KK, S = OH·OW.
//
//  forward:         y[n,g] (OCg × S)  = W[g] (OCg × Kg) · col[n,g] (Kg × S), then + bias
//  backward_input:  dcol[n,g] (Kg × S) = W[g]ᵀ · gy[n,g], then col2im (gather: no atomics)
//  backward_weight: gW[g] (OCg × Kg)  = Σ_n gy[n,g] · col[n,g]ᵀ,   gb[oc] = Σ_{n,s} gy[n,oc,s]
//
// col[n] (C·KK × S, row c·KK + kh·KW + kw) is the im2col matrix of image n; the rows of
// group g are one contiguous block, so group g's matrix is col[n] + g·Kg·S. A 1×1,
// stride-1, unpadded convolution needs no im2col: x[n] already is col[n] (and gx[n]
// is dcol[n]). The GEMMs are fd::cuda::sgemm_batched (tensor cores per the matmul
// precision), batched over images or groups. im2col scratch is bounded by chunking
// over the batch.
//
// The weight gradient reduces over images and pixels. Rather than one GEMM that
// accumulates image after image (few output tiles, long serial K), every image, and
// for large images every slice of its pixels, gets its own partial gW in scratch
// (one batched GEMM fills them all in parallel) and a final kernel sums the partials
// in a fixed order, so the result is deterministic.
//
// Depthwise-like convolutions (OCg ≤ 4 and Cg ≤ 16) would waste almost all of a
// GEMM tile and blow the input up KK times for nothing; they run as direct
// float32 kernels instead.
#include <algorithm>
#include <optional>

#include "common.cuh"
#include "gemm.h"

namespace fd::cuda {
namespace {

// Bound on im2col + partial-sum scratch per chunk of images (floats): 256 MB.
constexpr int64_t kScratchFloats = (int64_t(256) << 20) / int64_t(sizeof(float));

// Geometry in 32-bit ints for the kernels (every plane and kernel extent fits; the host checks).
struct Geo {
  int C, H, W, OC, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, Cg, OCg;
};

Geo make_geo(const Conv2dShape& s) {
  const int64_t too_big = int64_t(1) << 31;
  if (s.H * s.W >= too_big || s.OH() * s.OW() >= too_big || s.C >= too_big || s.OC >= too_big ||
      s.C / s.groups * s.KH * s.KW >= too_big)
    check(cudaErrorInvalidValue, "conv2d: an image plane or kernel with 2^31 or more elements");
  return Geo{int(s.C),        int(s.H),        int(s.W),        int(s.OC),      int(s.OH()),          int(s.OW()),
             int(s.KH),       int(s.KW),       int(s.stride_h), int(s.stride_w), int(s.pad_h),        int(s.pad_w),
             int(s.dil_h),    int(s.dil_w),    int(s.C / s.groups), int(s.OC / s.groups)};
}

bool is_pointwise(const Conv2dShape& s) {
  return s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

// Degenerate shapes (no channels in or out) also go direct: the loops are empty and
// every output element is still written.
bool use_direct(const Conv2dShape& s) {
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  return Cg == 0 || OCg == 0 || s.KH * s.KW == 0 || (OCg <= 4 && Cg <= 16);
}

int sm_count() {
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, current_device()) != cudaSuccess) {
    cudaGetLastError();
    n = 108;
  }
  return std::max(n, 1);
}


// Sum over the block (blockDim.x a multiple of 32, blockDim.y == 1); the result is valid in thread 0.
// Every thread of the block must call it.
__device__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // the previous call's readers are done with warp_sums
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x >> 5) ? warp_sums[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  }
  return v;
}

// ---- im2col / col2im -------------------------------------------------------------

// col[r][oh·OW + ow] = x[plane][oh·sh − ph + kh·dh][ow·sw − pw + kw·dw] (0 outside the image),
// r = plane·KK + kh·KW + kw over the rows of nb images (plane = n·C + c).
__global__ void im2col_kernel(const float* __restrict__ x, float* __restrict__ col, int64_t rows, Geo g) {
  const int KK = g.KH * g.KW, S = g.OH * g.OW;
  FD_FOR_ROWS(r, rows) {
    const int kk = int(r % KK), kh = kk / g.KW, kw = kk - kh * g.KW;
    const float* src = x + (r / KK) * int64_t(g.H) * g.W;
    float* dst = col + r * S;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
      const int oh = s / g.OW, ow = s - oh * g.OW;
      const int ih = oh * g.sh - g.ph + kh * g.dh, iw = ow * g.sw - g.pw + kw * g.dw;
      dst[s] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? __ldg(src + int64_t(ih) * g.W + iw) : 0.f;
    }
  }
}

// gx[plane][ih][iw] = Σ_{kh,kw} dcol[plane·KK + kh·KW + kw][oh·OW + ow] over the taps that read
// (ih, iw): ih = oh·sh − ph + kh·dh with 0 ≤ oh < OH (same along w). One thread per input pixel.
__global__ void col2im_kernel(const float* __restrict__ dcol, float* __restrict__ gx, int64_t planes, Geo g) {
  const int KK = g.KH * g.KW, S = g.OH * g.OW, HW = g.H * g.W;
  FD_FOR_ROWS(plane, planes) {
    const float* src = dcol + plane * KK * int64_t(S);
    float* dst = gx + plane * HW;
    for (int p = threadIdx.x; p < HW; p += blockDim.x) {
      const int ih = p / g.W, iw = p - ih * g.W;
      float acc = 0.f;
      for (int kh = 0; kh < g.KH; ++kh) {
        const int th = ih + g.ph - kh * g.dh;
        if (th < 0) break;  // decreases with kh
        if (th % g.sh) continue;
        const int oh = th / g.sh;
        if (oh >= g.OH) continue;
        for (int kw = 0; kw < g.KW; ++kw) {
          const int tw = iw + g.pw - kw * g.dw;
          if (tw < 0) break;
          if (tw % g.sw) continue;
          const int ow = tw / g.sw;
          if (ow >= g.OW) continue;
          acc += __ldg(src + int64_t(kh * g.KW + kw) * S + oh * g.OW + ow);
        }
      }
      dst[p] = acc;
    }
  }
}

// ---- bias ------------------------------------------------------------------------

// y[n, oc, :] += bias[oc]; rows = N·OC.
__global__ void add_bias_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t rows, int OC, int S) {
  FD_FOR_ROWS(r, rows) {
    const float b = __ldg(bias + r % OC);
    float* dst = y + r * S;
    for (int s = threadIdx.x; s < S; s += blockDim.x) dst[s] += b;
  }
}

// gb[oc] = Σ_{n,s} gy[n, oc, s]: one block per channel (fixed order: deterministic).
__global__ void bias_grad_kernel(const float* __restrict__ gy, float* __restrict__ gb, int64_t N, int OC, int S) {
  const int64_t total = N * S;
  for (int oc = blockIdx.x; oc < OC; oc += gridDim.x) {
    float acc = 0.f;
    for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
      const int64_t n = i / S;
      acc += __ldg(gy + (n * OC + oc) * S + (i - n * S));
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) gb[oc] = acc;
  }
}

// gw[i] = (accumulate ? gw[i] : 0) + Σ_slot part[slot·size + i], slots in order.
__global__ void sum_partials_kernel(const float* __restrict__ part, float* __restrict__ gw, int64_t slots, int64_t size,
                                    bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < size; i += int64_t(gridDim.x) * blockDim.x) {
    float acc = accumulate ? gw[i] : 0.f;
    for (int64_t k = 0; k < slots; ++k) acc += __ldg(part + k * size + i);
    gw[i] = acc;
  }
}

// ---- direct kernels (depthwise-like shapes) --------------------------------------

// y[n,oc,oh,ow] = bias[oc] + Σ_{cl,kh,kw} w[oc,cl,kh,kw] · x[n, g·Cg + cl, ih, iw]; rows = N·OC.
__global__ void conv_direct_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                   const float* __restrict__ bias, float* __restrict__ y, int64_t rows, Geo g) {
  const int KK = g.KH * g.KW, S = g.OH * g.OW;
  const int64_t HW = int64_t(g.H) * g.W;
  FD_FOR_ROWS(r, rows) {
    const int oc = int(r % g.OC);
    const int64_t n = r / g.OC;
    const float* xg = x + (n * g.C + int64_t(oc / g.OCg) * g.Cg) * HW;
    const float* wo = w + int64_t(oc) * g.Cg * KK;
    const float b = bias ? __ldg(bias + oc) : 0.f;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
      const int oh = s / g.OW, ow = s - oh * g.OW;
      float acc = 0.f;
      for (int cl = 0; cl < g.Cg; ++cl) {
        const float* xc = xg + cl * HW;
        const float* wc = wo + cl * KK;
        for (int kh = 0; kh < g.KH; ++kh) {
          const int ih = oh * g.sh - g.ph + kh * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          for (int kw = 0; kw < g.KW; ++kw) {
            const int iw = ow * g.sw - g.pw + kw * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            acc += __ldg(wc + kh * g.KW + kw) * __ldg(xc + int64_t(ih) * g.W + iw);
          }
        }
      }
      y[r * S + s] = acc + b;
    }
  }
}

// gx[n,c,ih,iw] = Σ_{ocl,kh,kw} w[g·OCg + ocl, cl, kh, kw] · gy[n, g·OCg + ocl, oh, ow] over the
// taps with ih = oh·sh − ph + kh·dh (same along w); rows = N·C.
__global__ void conv_direct_grad_input_kernel(const float* __restrict__ gy, const float* __restrict__ w,
                                              float* __restrict__ gx, int64_t rows, Geo g) {
  const int KK = g.KH * g.KW, HW = g.H * g.W;
  const int64_t S = int64_t(g.OH) * g.OW;
  FD_FOR_ROWS(r, rows) {
    const int c = int(r % g.C), grp = c / g.Cg, cl = c - grp * g.Cg;
    const int64_t n = r / g.C;
    for (int p = threadIdx.x; p < HW; p += blockDim.x) {
      const int ih = p / g.W, iw = p - ih * g.W;
      float acc = 0.f;
      for (int ocl = 0; ocl < g.OCg; ++ocl) {
        const int oc = grp * g.OCg + ocl;
        const float* gyc = gy + (n * g.OC + oc) * S;
        const float* wc = w + (int64_t(oc) * g.Cg + cl) * KK;
        for (int kh = 0; kh < g.KH; ++kh) {
          const int th = ih + g.ph - kh * g.dh;
          if (th < 0) break;
          if (th % g.sh) continue;
          const int oh = th / g.sh;
          if (oh >= g.OH) continue;
          for (int kw = 0; kw < g.KW; ++kw) {
            const int tw = iw + g.pw - kw * g.dw;
            if (tw < 0) break;
            if (tw % g.sw) continue;
            const int ow = tw / g.sw;
            if (ow >= g.OW) continue;
            acc += __ldg(wc + kh * g.KW + kw) * __ldg(gyc + int64_t(oh) * g.OW + ow);
          }
        }
      }
      gx[r * HW + p] = acc;
    }
  }
}

// gw[oc,cl,kh,kw] = Σ_{n,oh,ow} gy[n,oc,oh,ow] · x[n, g·Cg + cl, ih, iw]: one block per weight.
__global__ void conv_direct_grad_weight_kernel(const float* __restrict__ x, const float* __restrict__ gy,
                                               float* __restrict__ gw, int64_t N, int64_t weights, Geo g) {
  const int KK = g.KH * g.KW, S = g.OH * g.OW;
  const int64_t HW = int64_t(g.H) * g.W, total = N * S;
  for (int64_t e = blockIdx.x; e < weights; e += gridDim.x) {
    const int kk = int(e % KK), kh = kk / g.KW, kw = kk - kh * g.KW;
    const int cl = int((e / KK) % g.Cg), oc = int(e / (int64_t(KK) * g.Cg));
    const int c = (oc / g.OCg) * g.Cg + cl;
    float acc = 0.f;
    for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
      const int64_t n = i / S;
      const int s = int(i - n * S), oh = s / g.OW, ow = s - oh * g.OW;
      const int ih = oh * g.sh - g.ph + kh * g.dh, iw = ow * g.sw - g.pw + kw * g.dw;
      if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
      acc += __ldg(gy + (n * g.OC + oc) * S + s) * __ldg(x + (n * g.C + c) * HW + int64_t(ih) * g.W + iw);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) gw[e] = acc;
  }
}

// ---- host helpers ----------------------------------------------------------------

// Matrix (n, g) of a per-image, per-group GEMM operand starts at p + n·image + g·group.
struct Operand {
  const float* p;
  int64_t rs, cs, image, group;
};

// C(n,g) = A(n,g) · B(n,g) (beta 0: C write-only) for n < images, g < groups, batched over
// whichever of images / groups is larger and looping over the other.
void gemm_images_groups(int64_t images, int64_t groups, int64_t M, int64_t N, int64_t K, const Operand& A,
                        const Operand& B, float* C, int64_t ldc, int64_t c_image, int64_t c_group) {
  if (images >= groups) {
    for (int64_t g = 0; g < groups; ++g)
      cuda::sgemm_batched(images, M, N, K, 1.f, MatView{A.p + g * A.group, A.rs, A.cs}, A.image,
                    MatView{B.p + g * B.group, B.rs, B.cs}, B.image, 0.f, C + g * c_group, ldc, c_image);
  } else {
    for (int64_t n = 0; n < images; ++n)
      cuda::sgemm_batched(groups, M, N, K, 1.f, MatView{A.p + n * A.image, A.rs, A.cs}, A.group,
                    MatView{B.p + n * B.image, B.rs, B.cs}, B.group, 0.f, C + n * c_image, ldc, c_group);
  }
}

// Images per chunk so that `per_image` scratch floats each stay within the budget (at least 1).
int64_t chunk_images(int64_t N, int64_t per_image) {
  return std::clamp<int64_t>(kScratchFloats / std::max<int64_t>(per_image, 1), 1, std::max<int64_t>(N, 1));
}

void im2col(const float* x, float* col, int64_t images, const Geo& g) {
  const int64_t rows = images * g.C * int64_t(g.KH) * g.KW;
  const RowGrid rg = row_grid(rows, int64_t(g.OH) * g.OW);
  im2col_kernel<<<rg.grid, rg.block, 0, stream()>>>(x, col, rows, g);
  check_launch("conv2d (im2col)");
}

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  if (s.N == 0 || s.OC == 0) return;  // y is empty
  const Geo g = make_geo(s);
  const int64_t S = s.OH() * s.OW(), KK = s.KH * s.KW, Cg = s.C / s.groups, OCg = s.OC / s.groups, Kg = Cg * KK;
  if (use_direct(s)) {
    const RowGrid rg = row_grid(s.N * s.OC, S);
    conv_direct_kernel<<<rg.grid, rg.block, 0, stream()>>>(x, w, bias, y, s.N * s.OC, g);
    check_launch("conv2d");
    return;
  }
  const bool pointwise = is_pointwise(s);
  const int64_t col_image = s.C * KK * S;  // floats of col[n] (== C·H·W when pointwise)
  const int64_t nb = pointwise ? s.N : chunk_images(s.N, col_image);
  std::optional<Scratch> col_buf;
  if (!pointwise) col_buf.emplace(size_t(nb * col_image) * sizeof(float), "conv2d");
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t nc = std::min(nb, s.N - n0);
    const float* col = x + n0 * s.C * s.H * s.W;
    if (!pointwise) {
      im2col(col, col_buf->get(), nc, g);
      col = col_buf->get();
    }
    gemm_images_groups(nc, s.groups, OCg, S, Kg, Operand{w, Kg, 1, 0, OCg * Kg}, Operand{col, S, 1, col_image, Kg * S},
                       y + n0 * s.OC * S, S, s.OC * S, OCg * S);
  }
  if (bias) {
    const RowGrid rg = row_grid(s.N * s.OC, S);
    add_bias_kernel<<<rg.grid, rg.block, 0, stream()>>>(y, bias, s.N * s.OC, g.OC, int(S));
    check_launch("conv2d (bias)");
  }
}

void conv2d_backward_input(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  if (s.N == 0 || s.C == 0) return;  // gx is empty
  const Geo g = make_geo(s);
  const int64_t S = s.OH() * s.OW(), HW = s.H * s.W, KK = s.KH * s.KW, Cg = s.C / s.groups, OCg = s.OC / s.groups,
                Kg = Cg * KK;
  if (use_direct(s)) {
    const RowGrid rg = row_grid(s.N * s.C, HW);
    conv_direct_grad_input_kernel<<<rg.grid, rg.block, 0, stream()>>>(gy, w, gx, s.N * s.C, g);
    check_launch("conv2d_backward_input");
    return;
  }
  // dcol[n,g] (Kg × S) = W[g]ᵀ · gy[n,g]; W[g]ᵀ is the view (rs 1, cs Kg) of the row-major W[g].
  const bool pointwise = is_pointwise(s);
  const int64_t col_image = s.C * KK * S;
  const int64_t nb = pointwise ? s.N : chunk_images(s.N, col_image);
  std::optional<Scratch> col_buf;
  if (!pointwise) col_buf.emplace(size_t(nb * col_image) * sizeof(float), "conv2d_backward_input");
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t nc = std::min(nb, s.N - n0);
    float* dcol = pointwise ? gx + n0 * s.C * HW : col_buf->get();
    gemm_images_groups(nc, s.groups, Kg, S, OCg, Operand{w, 1, Kg, 0, OCg * Kg},
                       Operand{gy + n0 * s.OC * S, S, 1, s.OC * S, OCg * S}, dcol, S, col_image, Kg * S);
    if (!pointwise) {
      const RowGrid rg = row_grid(nc * s.C, HW);
      col2im_kernel<<<rg.grid, rg.block, 0, stream()>>>(dcol, gx + n0 * s.C * HW, nc * s.C, g);
      check_launch("conv2d_backward_input (col2im)");
    }
  }
}

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gb) {
  const Geo g = make_geo(s);
  const int64_t S = s.OH() * s.OW(), KK = s.KH * s.KW, Cg = s.C / s.groups, OCg = s.OC / s.groups, Kg = Cg * KK;
  const int64_t wsize = s.OC * Kg;
  if (gb && s.OC > 0) {
    if (s.N == 0) {
      fill(gb, s.OC, 0.f);
    } else {
      bias_grad_kernel<<<unsigned(std::min<int64_t>(s.OC, 65535)), 256, 0, stream()>>>(gy, gb, s.N, int(s.OC), int(S));
      check_launch("conv2d_backward_weight (bias)");
    }
  }
  if (wsize == 0) return;
  if (s.N == 0) {
    fill(gw, wsize, 0.f);
    return;
  }
  if (use_direct(s)) {
    const unsigned blocks = unsigned(std::min<int64_t>(wsize, int64_t(1) << 20));
    conv_direct_grad_weight_kernel<<<blocks, 256, 0, stream()>>>(x, gy, gw, s.N, wsize, g);
    check_launch("conv2d_backward_weight");
    return;
  }
  const bool pointwise = is_pointwise(s);
  const int64_t col_image = s.C * KK * S;
  const int64_t col_scratch = pointwise ? 0 : col_image;
  const int64_t nb = chunk_images(s.N, col_scratch + wsize);
  // Pixel slices per image: enough partial GEMMs for ~2 waves of (assumed 128×128) output
  // tiles over the SMs, each slice at least 256 pixels long, within the scratch budget.
  const int64_t tiles = s.groups * ((OCg + 127) / 128) * ((Kg + 127) / 128);
  int64_t P = std::clamp<int64_t>((2 * sm_count() + tiles * nb - 1) / (tiles * nb), 1, std::clamp<int64_t>(S / 256, 1, 64));
  while (P > 1 && nb * (col_scratch + P * wsize) > kScratchFloats) --P;
  const int64_t L = (S + P - 1) / P;               // pixels per slice
  const int64_t full = S / L, rest = S - full * L;  // full slices and the shorter last one
  const int64_t slices = full + (rest > 0 ? 1 : 0);
  std::optional<Scratch> col_buf, part_buf;
  if (!pointwise) col_buf.emplace(size_t(nb * col_image) * sizeof(float), "conv2d_backward_weight");
  const bool direct_out = s.N == 1 && slices == 1;  // a single partial: the GEMM writes gw itself
  if (!direct_out) part_buf.emplace(size_t(nb * slices * wsize) * sizeof(float), "conv2d_backward_weight");
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t nc = std::min(nb, s.N - n0);
    const float* col = x + n0 * s.C * s.H * s.W;
    if (!pointwise) {
      im2col(col, col_buf->get(), nc, g);
      col = col_buf->get();
    }
    // Partial (n, slice) = gy[n,g][:, slice] (OCg × L) · col[n,g][:, slice]ᵀ (L × Kg), at part + (n·slices + slice)·wsize.
    const float* gyc = gy + n0 * s.OC * S;
    float* part = direct_out ? gw : part_buf->get<float>();
    if (slices == 1) {
      gemm_images_groups(nc, s.groups, OCg, Kg, S, Operand{gyc, S, 1, s.OC * S, OCg * S},
                         Operand{col, 1, S, col_image, Kg * S}, part, Kg, wsize, OCg * Kg);
    } else {
      for (int64_t n = 0; n < nc; ++n)
        for (int64_t grp = 0; grp < s.groups; ++grp) {
          const float* a = gyc + n * s.OC * S + grp * OCg * S;
          const float* b = col + n * col_image + grp * Kg * S;
          float* c = part + n * slices * wsize + grp * OCg * Kg;
          cuda::sgemm_batched(full, OCg, Kg, L, 1.f, MatView{a, S, 1}, L, MatView{b, 1, S}, L, 0.f, c, Kg, wsize);
          if (rest > 0)
            cuda::sgemm_batched(1, OCg, Kg, rest, 1.f, MatView{a + full * L, S, 1}, 0, MatView{b + full * L, 1, S}, 0, 0.f,
                          c + full * wsize, Kg, wsize);
        }
    }
    if (!direct_out) {
      sum_partials_kernel<<<grid_for(wsize), 256, 0, stream()>>>(part, gw, nc * slices, wsize, n0 > 0);
      check_launch("conv2d_backward_weight (sum)");
    }
  }
}

}  // namespace fd::cuda
