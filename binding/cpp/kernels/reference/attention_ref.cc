// Reference attention: the obviously-correct oracle the SIMD kernels are tested
// against. One row of scores at a time (O(Nk) scratch), double accumulation.
#include <cmath>
#include <vector>

#include "kernels/attention_impl.h"

namespace fd::kernels::ref {

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse) {
  const int64_t Nq = s.Nq, Nk = s.Nk, D = s.D, Dv = s.Dv;
  std::vector<double> p(static_cast<size_t>(Nk > 0 ? Nk : 1));
  std::vector<double> acc(static_cast<size_t>(Dv > 0 ? Dv : 1));
  for (int64_t bh = 0; bh < s.B * s.H; ++bh) {
    const float* qh = q + bh * Nq * D;
    const float* kh = k + bh * Nk * D;
    const float* vh = v + bh * Nk * Dv;
    float* oh = o + bh * Nq * Dv;
    if (Nk == 0) {  // no keys: empty sum, output 0 and lse = -inf
      for (int64_t x = 0; x < Nq * Dv; ++x) oh[x] = 0.f;
      for (int64_t i = 0; i < Nq; ++i) lse[bh * Nq + i] = -INFINITY;
      continue;
    }
    for (int64_t i = 0; i < Nq; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < Nk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qh[i * D + d]) * double(kh[j * D + d]);
        p[j] = dot * double(s.scale);
        if (p[j] > mx) mx = p[j];
      }
      double sum = 0;
      for (int64_t j = 0; j < Nk; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      for (int64_t c = 0; c < Dv; ++c) acc[c] = 0;
      for (int64_t j = 0; j < Nk; ++j)
        for (int64_t c = 0; c < Dv; ++c) acc[c] += p[j] * double(vh[j * Dv + c]);
      for (int64_t c = 0; c < Dv; ++c) oh[i * Dv + c] = float(acc[c] / sum);
      lse[bh * Nq + i] = float(mx + std::log(sum));
    }
  }
}

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv) {
  const int64_t Nq = s.Nq, Nk = s.Nk, D = s.D, Dv = s.Dv;
  const double scale = s.scale;
  std::vector<double> p(static_cast<size_t>(Nk > 0 ? Nk : 1)), ds(static_cast<size_t>(Nk > 0 ? Nk : 1));
  std::vector<double> dk(static_cast<size_t>(Nk * D > 0 ? Nk * D : 1)), dv(static_cast<size_t>(Nk * Dv > 0 ? Nk * Dv : 1));
  std::vector<double> dq(static_cast<size_t>(D > 0 ? D : 1));
  for (int64_t bh = 0; bh < s.B * s.H; ++bh) {
    const float* qh = q + bh * Nq * D;
    const float* kh = k + bh * Nk * D;
    const float* vh = v + bh * Nk * Dv;
    const float* oh = o + bh * Nq * Dv;
    const float* goh = go + bh * Nq * Dv;
    for (auto& x : dk) x = 0;
    for (auto& x : dv) x = 0;
    for (int64_t i = 0; i < Nq; ++i) {
      const double l = lse[bh * Nq + i];
      double di = 0;  // D_i = rowsum(dO ∘ O)
      for (int64_t c = 0; c < Dv; ++c) di += double(goh[i * Dv + c]) * double(oh[i * Dv + c]);
      for (int64_t j = 0; j < Nk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qh[i * D + d]) * double(kh[j * D + d]);
        p[j] = std::exp(dot * scale - l);
        double dp = 0;
        for (int64_t c = 0; c < Dv; ++c) dp += double(goh[i * Dv + c]) * double(vh[j * Dv + c]);
        ds[j] = p[j] * (dp - di);
      }
      for (int64_t d = 0; d < D; ++d) dq[d] = 0;
      for (int64_t j = 0; j < Nk; ++j) {
        for (int64_t d = 0; d < D; ++d) {
          dq[d] += ds[j] * double(kh[j * D + d]);
          dk[j * D + d] += ds[j] * double(qh[i * D + d]);
        }
        for (int64_t c = 0; c < Dv; ++c) dv[j * Dv + c] += p[j] * double(goh[i * Dv + c]);
      }
      for (int64_t d = 0; d < D; ++d) gq[(bh * Nq + i) * D + d] = float(scale * dq[d]);
    }
    for (int64_t x = 0; x < Nk * D; ++x) gk[bh * Nk * D + x] = float(scale * dk[x]);
    for (int64_t x = 0; x < Nk * Dv; ++x) gv[bh * Nk * Dv + x] = float(dv[x]);
  }
}

}  // namespace fd::kernels::ref
