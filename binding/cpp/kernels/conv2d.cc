// conv2d as implicit GEMM on the SGEMM driver (x86-64-v2 baseline).
//  forward:        y[n,g] (OCg × OH·OW) = W[g] (OCg × Cg·KH·KW) · col(x[n,g]); the B
//                  packer reads x directly (im2col fused into packing); bias fused
//                  into the epilogue. 1×1 stride-1 unpadded convs are a plain GEMM.
//  backward_input: stride 1 → a forward conv of gy with the flipped, transposed
//                  weight and padding dil·(K−1)−pad (implicit transposed conv);
//                  other strides → col = W[g]ᵀ·gy[n,g] per image, then col2im.
//  backward_weight: gy (OCg × OH·OW) · col(x)ᵀ, K = output pixels, summed over the
//                  batch image by image (beta = 1 after the first). The B operand
//                  is read from a zero-padded channels-last copy of x, so each
//                  packed row is a contiguous run of channels; the result is
//                  permuted from (kh, kw, c) to (c, kh, kw) order at the end.
// Threads split images (forward / backward-input) or C blocks (weight gradient);
// never the reduction, so results are identical for any thread count.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/threadpool.h"
#include "kernels/gemm.h"
#include "kernels/scratch.h"
#include "kernels/gemm_impl.h"
#include "kernels/direct3x3.h"
#include "kernels/winograd.h"

namespace fd::kernels {
namespace {

using impl::ASource;
using impl::BSource;
using impl::ConvSrc;
using impl::ConvTSrc;
using impl::KernelSet;

int pool_threads() { return ThreadPool::in_parallel() ? 1 : ThreadPool::global().num_threads(); }

// Runs item(i, threaded) for i in [0, items): whole items per thread when the
// items divide well over the threads, otherwise one by one with the GEMM itself threaded.
template <typename F>
void for_items(int64_t items, double flops_per_item, const F& item) {
  const int T = pool_threads();
  if (T > 1 && items > 1 && (items % T == 0 || items >= 4 * T) && flops_per_item * items > 2e6) {
    ThreadPool::global().parallel_for(items, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) item(i, false);
    });
  } else {
    for (int64_t i = 0; i < items; ++i) item(i, true);
  }
}

void run_gemm(const KernelSet& ks, bool threaded, int64_t M, int64_t N, int64_t K, const ASource& A, const BSource& B,
              float beta, float* C, int64_t ldc, const float* bias_row) {
  if (threaded)
    impl::gemm_threaded(ks, M, N, K, 1.f, A, B, beta, C, ldc, bias_row, nullptr);
  else
    impl::gemm_block(ks, 0, M, 0, N, K, 1.f, A, B, beta, C, ldc, bias_row, nullptr);
}

bool is_pointwise(const Conv2dShape& s) {
  return s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

// Forward conv of src [N, groups·Cin_g, H, W] with weight rows A[g] (Mg × Cin_g·KH·KW),
// written to dst [N, groups·Mg, OH, OW]. Geometry in `geo` (C = Cin_g per group).
void conv_forward_impl(const KernelSet& ks, int64_t N, int64_t groups, const float* src, int64_t src_chan_total,
                       const ConvSrc& geo, const float* A, int64_t a_rs, int64_t a_cs, int64_t a_group_stride,
                       int64_t Mg, const float* bias, float* dst, const PackedMatrix* packed_a = nullptr) {
  const int64_t HW = geo.H * geo.W, S = geo.OH * geo.OW, Kg = geo.C * geo.KH * geo.KW;
  const bool pointwise = geo.KH == 1 && geo.KW == 1 && geo.sh == 1 && geo.sw == 1 && geo.ph == 0 && geo.pw == 0;
  for_items(N * groups, 2.0 * Mg * S * Kg, [&](int64_t item, bool threaded) {
    const int64_t n = item / groups, g = item % groups;
    const float* xg = src + (n * src_chan_total + g * geo.C) * HW;
    ASource a{A + g * a_group_stride, a_rs, a_cs};
    if (packed_a) a.packed = packed_a->data, a.packed_mp = packed_a->P;  // one group only
    ConvSrc cs = geo;
    cs.x = xg;
    BSource b{1, nullptr, 0, 0, &cs, nullptr};
    if (pointwise) b = BSource{0, xg, HW, 1, nullptr, nullptr};
    float* out = dst + (n * groups * Mg + g * Mg) * S;
    run_gemm(ks, threaded, Mg, S, Kg, a, b, 0.f, out, S, bias ? bias + g * Mg : nullptr);
  });
}

thread_local ScratchBuf tl_xt, tl_gwt;

}  // namespace

namespace {
// The K block the forward GEMM uses for s: implicit im2col (kc_conv) or, 1×1, the plain matrix (kc).
int64_t forward_k_block(const KernelSet& ks, const Conv2dShape& s) {
  const int64_t Kg = s.C / s.groups * s.KH * s.KW;
  return impl::k_block(Kg, is_pointwise(s) ? ks.kc : ks.kc_conv);
}
}  // namespace

bool conv3x3_stride1(const Conv2dShape& s) {
  return s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 && s.dil_h == 1 && s.dil_w == 1 &&
         s.groups == 1 && s.pad_h == s.pad_w && (s.pad_h == 0 || s.pad_h == 1) && s.OH() > 0 && s.OW() > 0;
}

std::shared_ptr<const PackedMatrix> pack_conv_weight_once(const Conv2dShape& s, const float* w) {
  const KernelSet* ks = impl::active_kernels();
  if (!ks || s.groups != 1 || s.OC <= 0 || s.C <= 0) return nullptr;
  if (d3::chosen(s)) return d3::pack_weight_once(s, w);
  if (wino::tile(s, /*u_kept=*/true)) return wino::pack_weight_once(*ks, s, w);
  const int64_t K = s.C * s.KH * s.KW;
  return impl::pack_once(*ks, 'A', K, s.OC, forward_k_block(*ks, s), w, K, 1);
}

bool packed_conv_weight_fits(const PackedMatrix& pm, const Conv2dShape& s) {
  const KernelSet* ks = impl::active_kernels();
  if (!ks || s.groups != 1) return false;
  if (d3::chosen(s)) return d3::packed_weight_fits(pm, s);
  if (wino::tile(s, /*u_kept=*/true)) return wino::packed_weight_fits(pm, *ks, s);
  return impl::packed_fits(pm, ks, 'A', s.C * s.KH * s.KW, s.OC, forward_k_block(*ks, s));
}

const char* conv2d_forward_path(const Conv2dShape& s, bool keeps_packed) {
  if (!impl::active_kernels()) return "direct";
  if (d3::chosen(s)) return "direct3x3";
  switch (wino::tile(s, keeps_packed)) {  // u_kept below holds exactly when keeps_packed and tile(s, true) > 0
    case 4: return "winograd4";
    case 2: return "winograd";
    default: return "direct";
  }
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                    const PackedMatrix* packed_w) {
  const KernelSet* ks = impl::active_kernels();
  if (!ks) return ref::conv2d_forward(s, x, w, bias, y);
  const int64_t OH = s.OH(), OW = s.OW();
  if (s.N <= 0 || s.OC <= 0 || OH <= 0 || OW <= 0) return;
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups, Kg = Cg * s.KH * s.KW;
  if (packed_w && !packed_conv_weight_fits(*packed_w, s)) packed_w = nullptr;
  // Small maps: the direct 3×3 kernel with output channels in the vector lanes (kernels/direct3x3.h).
  if (d3::chosen(s) && d3::forward(s, x, w, bias, y, packed_w)) return;
  if (packed_w && packed_w->source == 'D') packed_w = nullptr;
  // 3×3 stride-1 convs with enough channels: Winograd F(2×2 or 4×4, 3×3) (kernels/winograd.h).
  const bool u_kept = packed_w && packed_w->source == 'W';
  const int m = wino::tile(s, u_kept);
  if (m && wino::conv3x3_forward(*ks, s, m, x, w, bias, y, u_kept ? packed_w : nullptr)) return;
  if (u_kept) packed_w = nullptr;
  const ConvSrc geo{nullptr, Cg, s.H, s.W, s.KH, s.KW, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h, s.dil_w, OH, OW};
  conv_forward_impl(*ks, s.N, s.groups, x, s.C, geo, w, Kg, 1, OCg * Kg, OCg, bias, y, packed_w);
}

void conv2d_backward_input(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  const KernelSet* ks = impl::active_kernels();
  if (!ks) return ref::conv2d_backward_input(s, gy, w, gx);
  const int64_t OH = s.OH(), OW = s.OW();
  if (s.N <= 0 || s.C <= 0 || s.H <= 0 || s.W <= 0) return;
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G, KK = s.KH * s.KW, Kg = Cg * KK, HW = s.H * s.W,
                S = OH * OW;
  if (OH <= 0 || OW <= 0 || OCg <= 0) {
    std::memset(gx, 0, sizeof(float) * static_cast<size_t>(s.N * s.C * HW));
    return;
  }
  if (is_pointwise(s)) {  // gx[n,g] = W[g]ᵀ · gy[n,g]
    const ConvSrc geo{nullptr, OCg, OH, OW, 1, 1, 1, 1, 0, 0, 1, 1, s.H, s.W};
    conv_forward_impl(*ks, s.N, G, gy, s.OC, geo, w, 1, Cg, OCg * Cg, Cg, nullptr, gx);
    return;
  }
  if (s.stride_h == 1 && s.stride_w == 1) {
    // Flipped, transposed weight: W'[g][c][(oc, kh', kw')] = W[g·OCg + oc][c][KH-1-kh'][KW-1-kw'].
    std::vector<float> wt(static_cast<size_t>(G * Cg * OCg * KK));
    for (int64_t g = 0; g < G; ++g)
      for (int64_t oc = 0; oc < OCg; ++oc)
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t r = 0; r < KK; ++r)
            wt[((g * Cg + c) * OCg + oc) * KK + (KK - 1 - r)] = w[((g * OCg + oc) * Cg + c) * KK + r];
    if (G == 1) {  // the flipped conv (gy → gx, weight [C, OC, KH, KW]) may be a Winograd or direct 3×3 one
      Conv2dShape f = s;
      f.C = s.OC, f.H = OH, f.W = OW, f.OC = s.C;
      f.pad_h = s.dil_h * (s.KH - 1) - s.pad_h, f.pad_w = s.dil_w * (s.KW - 1) - s.pad_w;
      if (f.OH() == s.H && f.OW() == s.W && d3::chosen(f) && d3::forward(f, gy, wt.data(), nullptr, gx)) return;
      const int m = f.OH() == s.H && f.OW() == s.W ? wino::tile(f) : 0;
      if (m && wino::conv3x3_forward(*ks, f, m, gy, wt.data(), nullptr, gx)) return;
    }
    const ConvSrc geo{nullptr, OCg, OH, OW, s.KH, s.KW, 1, 1, s.dil_h * (s.KH - 1) - s.pad_h,
                      s.dil_w * (s.KW - 1) - s.pad_w, s.dil_h, s.dil_w, s.H, s.W};
    conv_forward_impl(*ks, s.N, G, gy, s.OC, geo, wt.data(), OCg * KK, 1, Cg * OCg * KK, Cg, nullptr, gx);
    return;
  }
  // Strided: col = W[g]ᵀ · gy[n,g] (Kg × S), then scatter-add (col2im).
  for_items(s.N * G, 2.0 * Kg * S * OCg, [&](int64_t item, bool threaded) {
    thread_local std::vector<float> col;
    if (col.size() < static_cast<size_t>(Kg * S)) col.resize(static_cast<size_t>(Kg * S));
    const int64_t n = item / G, g = item % G;
    const ASource a{w + g * OCg * Kg, 1, Kg};
    const BSource b{0, gy + (n * s.OC + g * OCg) * S, S, 1, nullptr, nullptr};
    run_gemm(*ks, threaded, Kg, S, OCg, a, b, 0.f, col.data(), S, nullptr);
    float* gxg = gx + (n * s.C + g * Cg) * HW;
    std::memset(gxg, 0, sizeof(float) * static_cast<size_t>(Cg * HW));
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < s.KH; ++kh)
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          const float* crow = col.data() + ((c * s.KH + kh) * s.KW + kw) * S;
          float* gxc = gxg + c * HW;
          for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t ih = oh * s.stride_h - s.pad_h + kh * s.dil_h;
            if (ih < 0 || ih >= s.H) continue;
            for (int64_t ow = 0; ow < OW; ++ow) {
              const int64_t iw = ow * s.stride_w - s.pad_w + kw * s.dil_w;
              if (iw >= 0 && iw < s.W) gxc[ih * s.W + iw] += crow[oh * OW + ow];
            }
          }
        }
  });
}

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gb) {
  const KernelSet* ks = impl::active_kernels();
  if (!ks) return ref::conv2d_backward_weight(s, x, gy, gw, gb);
  const int64_t OH = s.OH(), OW = s.OW();
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G, KK = s.KH * s.KW, Kg = Cg * KK, HW = s.H * s.W;
  const int64_t S = (OH > 0 && OW > 0) ? OH * OW : 0;
  // Bias gradient: per (image, channel) a float sum in 8 lanes, rounded into a
  // double accumulator image by image (the same arithmetic for any thread count).
  auto bias_rows = [&](int64_t n, int64_t ob, int64_t oe, double* acc) {
    for (int64_t oc = ob; oc < oe; ++oc) {
      const float* p = gy + (n * s.OC + oc) * S;
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 8 <= S; i += 8)
        for (int l = 0; l < 8; ++l) part[l] += p[i + l];
      double sum = 0.0;
      for (int l = 0; l < 8; ++l) sum += part[l];
      for (; i < S; ++i) sum += p[i];
      acc[oc] += sum;
    }
  };
  std::vector<double> gbacc(gb ? static_cast<size_t>(s.OC) : 0, 0.0);
  auto bias_all = [&]() {  // whole bias gradient in one pass (paths without a per-image loop)
    if (!gb) return;
    ThreadPool::global().parallel_for(s.OC, 8, [&](int64_t b, int64_t e) {
      for (int64_t n = 0; n < s.N; ++n) bias_rows(n, b, e, gbacc.data());
    });
    for (int64_t oc = 0; oc < s.OC; ++oc) gb[oc] = static_cast<float>(gbacc[oc]);
  };
  if (s.OC <= 0 || Kg <= 0) return bias_all();
  if (s.N <= 0 || S == 0) {
    bias_all();
    std::memset(gw, 0, sizeof(float) * static_cast<size_t>(s.OC * Kg));
    return;
  }
  const int T = pool_threads();
  int tm = 1, tn = 1;
  if (T > 1) impl::split_2d(OCg, Kg, ks->mr, ks->nr, T, &tm, &tn);
  const int nthreads = tm * tn;

  if (is_pointwise(s)) {  // gw[g] = Σ_n gy[n,g] · x[n,g]ᵀ, written in place
    bias_all();
    auto work = [&](int tid, int nt) {
      int64_t mb = 0, me = OCg, nb = 0, ne = Kg;
      if (nt == nthreads && nt > 1) {
        impl::block_range(OCg, ks->mr, tm, tid / tn, &mb, &me);
        impl::block_range(Kg, ks->nr, tn, tid % tn, &nb, &ne);
      } else if (tid != 0) {
        return;
      }
      for (int64_t g = 0; g < G; ++g)
        for (int64_t n = 0; n < s.N; ++n) {
          const ASource a{gy + (n * s.OC + g * OCg) * S, S, 1};
          const BSource b{0, x + (n * s.C + g * Cg) * HW, 1, HW, nullptr, nullptr};
          impl::gemm_block(*ks, mb, me, nb, ne, S, 1.f, a, b, n == 0 ? 0.f : 1.f, gw + g * OCg * Kg, Kg, nullptr,
                           nullptr);
        }
    };
    if (nthreads > 1)
      ThreadPool::global().run_on_all(work, nthreads);
    else
      work(0, 1);
    return;
  }

  // Zero-padded channels-last copies xt[n,g][hp][wp][c], made for a chunk of images
  // at a time (bounded scratch: one image on 1 thread, kChunk images otherwise) just
  // before their GEMMs, so they are still in cache when the B packer reads them.
  const int64_t Hp = (OH - 1) * s.stride_h + (s.KH - 1) * s.dil_h + 1;
  const int64_t Wp = (OW - 1) * s.stride_w + (s.KW - 1) * s.dil_w + 1;
  const int64_t img = Hp * Wp * Cg;
  constexpr int64_t kChunk = 4;
  const int64_t chunk = nthreads > 1 ? (s.N < kChunk ? s.N : kChunk) : 1;
  struct {
    float* p;
  } xt{tl_xt.get(static_cast<size_t>(chunk * G * img))}, gwt{tl_gwt.get(static_cast<size_t>(G * OCg * Kg))};
  if (!xt.p || !gwt.p) return ref::conv2d_backward_weight(s, x, gy, gw, gb);
  auto convert = [&](int64_t item, int64_t n0) {  // item = (n, g) with n ≥ n0
    const int64_t n = item / G, g = item % G;
    ks->to_nhwc(x + (n * s.C + g * Cg) * HW, Cg, s.H, s.W, s.pad_h, s.pad_w, Hp, Wp, xt.p + (item - n0 * G) * img);
  };
  for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
    const int64_t n1 = n0 + chunk < s.N ? n0 + chunk : s.N;
    if (nthreads > 1)
      ThreadPool::global().parallel_for((n1 - n0) * G, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) convert(n0 * G + i, n0);
      });
    else
      for (int64_t i = n0 * G; i < n1 * G; ++i) convert(i, n0);
    auto work = [&](int tid, int nt) {
      int64_t mb = 0, me = OCg, nb = 0, ne = Kg;
      const bool split = nt == nthreads && nt > 1;
      if (split) {
        impl::block_range(OCg, ks->mr, tm, tid / tn, &mb, &me);
        impl::block_range(Kg, ks->nr, tn, tid % tn, &nb, &ne);
      } else if (tid != 0) {
        return;
      }
      for (int64_t g = 0; g < G; ++g)
        for (int64_t n = n0; n < n1; ++n) {
          const ConvTSrc src{xt.p + ((n - n0) * G + g) * img, Cg, Wp, s.KH, s.KW, s.stride_h, s.stride_w,
                             s.dil_h, s.dil_w, OW};
          const ASource a{gy + (n * s.OC + g * OCg) * S, S, 1};
          const BSource b{2, nullptr, 0, 0, nullptr, &src};
          impl::gemm_block(*ks, mb, me, nb, ne, S, 1.f, a, b, n == 0 ? 0.f : 1.f, gwt.p + g * OCg * Kg, Kg, nullptr,
                           nullptr);
        }
      if (gb) {  // this thread's share of the bias channels, while gy[n] is in cache
        int64_t ob = 0, oe = s.OC;
        if (split) impl::block_range(s.OC, 1, nt, tid, &ob, &oe);
        for (int64_t n = n0; n < n1; ++n) bias_rows(n, ob, oe, gbacc.data());
      }
    };
    if (nthreads > 1)
      ThreadPool::global().run_on_all(work, nthreads);
    else
      work(0, 1);
  }
  if (gb)
    for (int64_t oc = 0; oc < s.OC; ++oc) gb[oc] = static_cast<float>(gbacc[oc]);
  // (kh, kw, c) → (c, kh, kw)
  for (int64_t g = 0; g < G; ++g)
    for (int64_t oc = 0; oc < OCg; ++oc) {
      const float* srow = gwt.p + (g * OCg + oc) * Kg;
      float* drow = gw + (g * OCg + oc) * Kg;
      for (int64_t r = 0; r < KK; ++r)
        for (int64_t c = 0; c < Cg; ++c) drow[c * KK + r] = srow[r * Cg + c];
    }
}

}  // namespace fd::kernels
