// Scalar reference (the oracle) for SGEMM (float32 and bf16 operands) and conv2d: plain loops, every dot
// product accumulated in double and rounded to float once; the epilogue
// (alpha, beta, biases) is applied in double too. Slow by design.
#include <cstdint>
#include <cstring>

#include "kernels/gemm_impl.h"

namespace fd::kernels::ref {

namespace {

// C = alpha·op(A)·op(B) + beta·C + biases with each operand element passed through `load`.
template <typename Load>
void gemm_loops(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
                const float* bias_row, const float* bias_col, Load load) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) acc += load(A.p[i * A.rs + k * A.cs]) * load(B.p[k * B.rs + j * B.cs]);
      double r = double(alpha) * acc;
      if (beta != 0.f) r += double(beta) * double(C[i * ldc + j]);
      if (bias_row) r += double(bias_row[i]);
      if (bias_col) r += double(bias_col[j]);
      C[i * ldc + j] = static_cast<float>(r);
    }
  }
}

}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
           const float* bias_row, const float* bias_col) {
  gemm_loops(M, N, K, alpha, A, B, beta, C, ldc, bias_row, bias_col, [](float v) { return double(v); });
}

uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN: keep it, quiet
  if ((u & 0x7F800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);      // ±0 and denormals: ±0
  u += 0x7FFFu + ((u >> 16) & 1u);                                                       // nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

void sgemm_bf16(int64_t M, int64_t N, int64_t K, float alpha, MatView A, MatView B, float beta, float* C, int64_t ldc,
                const float* bias_row, const float* bias_col) {
  gemm_loops(M, N, K, alpha, A, B, beta, C, ldc, bias_row, bias_col, [](float v) {
    const uint32_t u = uint32_t(bf16_bits(v)) << 16;
    float r;
    std::memcpy(&r, &u, sizeof r);
    return double(r);
  });
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  const int64_t OH = s.OH(), OW = s.OW();
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oc = 0; oc < s.OC; ++oc) {
      const int64_t g = oc / OCg;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = bias ? double(bias[oc]) : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < s.KH; ++kh) {
              const int64_t ih = oh * s.stride_h - s.pad_h + kh * s.dil_h;
              if (ih < 0 || ih >= s.H) continue;
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const int64_t iw = ow * s.stride_w - s.pad_w + kw * s.dil_w;
                if (iw < 0 || iw >= s.W) continue;
                acc += double(x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw]) *
                       double(w[((oc * Cg + c) * s.KH + kh) * s.KW + kw]);
              }
            }
          y[((n * s.OC + oc) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
    }
}

void conv2d_backward_input(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  const int64_t OH = s.OH(), OW = s.OW();
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  // Gather form: gx[n, c, ih, iw] = Σ over (oc in group, kh, kw) with a matching output position.
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c) {
      const int64_t g = c / Cg, cl = c % Cg;
      for (int64_t ih = 0; ih < s.H; ++ih)
        for (int64_t iw = 0; iw < s.W; ++iw) {
          double acc = 0.0;
          for (int64_t ocl = 0; ocl < OCg; ++ocl) {
            const int64_t oc = g * OCg + ocl;
            for (int64_t kh = 0; kh < s.KH; ++kh) {
              const int64_t th = ih + s.pad_h - kh * s.dil_h;
              if (th < 0 || th % s.stride_h) continue;
              const int64_t oh = th / s.stride_h;
              if (oh >= OH) continue;
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const int64_t tw = iw + s.pad_w - kw * s.dil_w;
                if (tw < 0 || tw % s.stride_w) continue;
                const int64_t ow = tw / s.stride_w;
                if (ow >= OW) continue;
                acc += double(gy[((n * s.OC + oc) * OH + oh) * OW + ow]) *
                       double(w[((oc * Cg + cl) * s.KH + kh) * s.KW + kw]);
              }
            }
          }
          gx[((n * s.C + c) * s.H + ih) * s.W + iw] = static_cast<float>(acc);
        }
    }
}

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gb) {
  const int64_t OH = s.OH(), OW = s.OW();
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  for (int64_t oc = 0; oc < s.OC; ++oc) {
    const int64_t g = oc / OCg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < s.KH; ++kh)
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          double acc = 0.0;
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t oh = 0; oh < OH; ++oh) {
              const int64_t ih = oh * s.stride_h - s.pad_h + kh * s.dil_h;
              if (ih < 0 || ih >= s.H) continue;
              for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t iw = ow * s.stride_w - s.pad_w + kw * s.dil_w;
                if (iw < 0 || iw >= s.W) continue;
                acc += double(gy[((n * s.OC + oc) * OH + oh) * OW + ow]) *
                       double(x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw]);
              }
            }
          gw[((oc * Cg + c) * s.KH + kh) * s.KW + kw] = static_cast<float>(acc);
        }
  }
  if (gb) {
    for (int64_t oc = 0; oc < s.OC; ++oc) {
      double acc = 0.0;
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t p = 0; p < OH * OW; ++p) acc += double(gy[(n * s.OC + oc) * OH * OW + p]);
      gb[oc] = static_cast<float>(acc);
    }
  }
}

}  // namespace fd::kernels::ref
