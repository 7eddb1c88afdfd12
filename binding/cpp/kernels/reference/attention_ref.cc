// Reference attention: the obviously-correct oracle the SIMD kernels are tested
// against. One row of scores at a time (O(Nk) scratch), double accumulation.
#include <cmath>
#include <vector>

#include "kernels/attention_impl.h"

namespace fd::kernels::ref {

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                       int64_t bh_begin, int64_t bh_end) {
  const int64_t Nq = s.Nq, Nk = s.Nk, D = s.D, Dv = s.Dv;
  const int64_t ldq = row_stride(s, D), ldv = row_stride(s, Dv);  // k rows like q's, o rows like v's
  std::vector<double> p(static_cast<size_t>(Nk > 0 ? Nk : 1));
  std::vector<double> acc(static_cast<size_t>(Dv > 0 ? Dv : 1));
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const float* qh = q + head_offset(s, bh, Nq, D);
    const float* kh = k + head_offset(s, bh, Nk, D);
    const float* vh = v + head_offset(s, bh, Nk, Dv);
    float* oh = o + head_offset(s, bh, Nq, Dv);
    for (int64_t i = 0; i < Nq; ++i) {
      if (Nk == 0) {  // no keys: empty sum, output 0 and lse = -inf
        for (int64_t c = 0; c < Dv; ++c) oh[i * ldv + c] = 0.f;
        lse[bh * Nq + i] = -INFINITY;
        continue;
      }
      double mx = -INFINITY;
      for (int64_t j = 0; j < Nk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qh[i * ldq + d]) * double(kh[j * ldq + d]);
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
        for (int64_t c = 0; c < Dv; ++c) acc[c] += p[j] * double(vh[j * ldv + c]);
      for (int64_t c = 0; c < Dv; ++c) oh[i * ldv + c] = float(acc[c] / sum);
      lse[bh * Nq + i] = float(mx + std::log(sum));
    }
  }
}

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                        int64_t bh_end) {
  const int64_t Nq = s.Nq, Nk = s.Nk, D = s.D, Dv = s.Dv;
  const int64_t ldq = row_stride(s, D), ldv = row_stride(s, Dv);
  const double scale = s.scale;
  std::vector<double> p(static_cast<size_t>(Nk > 0 ? Nk : 1)), ds(static_cast<size_t>(Nk > 0 ? Nk : 1));
  std::vector<double> dk(static_cast<size_t>(Nk * D > 0 ? Nk * D : 1)), dv(static_cast<size_t>(Nk * Dv > 0 ? Nk * Dv : 1));
  std::vector<double> dq(static_cast<size_t>(D > 0 ? D : 1));
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const float* qh = q + head_offset(s, bh, Nq, D);
    const float* kh = k + head_offset(s, bh, Nk, D);
    const float* vh = v + head_offset(s, bh, Nk, Dv);
    const float* oh = o + head_offset(s, bh, Nq, Dv);
    const float* goh = go + head_offset(s, bh, Nq, Dv);
    float* gqh = gq + head_offset(s, bh, Nq, D);
    float* gkh = gk + head_offset(s, bh, Nk, D);
    float* gvh = gv + head_offset(s, bh, Nk, Dv);
    for (auto& x : dk) x = 0;
    for (auto& x : dv) x = 0;
    for (int64_t i = 0; i < Nq; ++i) {
      const double l = lse[bh * Nq + i];
      double di = 0;  // D_i = rowsum(dO ∘ O)
      for (int64_t c = 0; c < Dv; ++c) di += double(goh[i * ldv + c]) * double(oh[i * ldv + c]);
      for (int64_t j = 0; j < Nk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qh[i * ldq + d]) * double(kh[j * ldq + d]);
        p[j] = std::exp(dot * scale - l);
        double dp = 0;
        for (int64_t c = 0; c < Dv; ++c) dp += double(goh[i * ldv + c]) * double(vh[j * ldv + c]);
        ds[j] = p[j] * (dp - di);
      }
      for (int64_t d = 0; d < D; ++d) dq[d] = 0;
      for (int64_t j = 0; j < Nk; ++j) {
        for (int64_t d = 0; d < D; ++d) {
          dq[d] += ds[j] * double(kh[j * ldq + d]);
          dk[j * D + d] += ds[j] * double(qh[i * ldq + d]);
        }
        for (int64_t c = 0; c < Dv; ++c) dv[j * Dv + c] += p[j] * double(goh[i * ldv + c]);
      }
      for (int64_t d = 0; d < D; ++d) gqh[i * ldq + d] = float(scale * dq[d]);
    }
    for (int64_t j = 0; j < Nk; ++j) {
      for (int64_t d = 0; d < D; ++d) gkh[j * ldq + d] = float(scale * dk[j * D + d]);
      for (int64_t c = 0; c < Dv; ++c) gvh[j * ldv + c] = float(dv[j * Dv + c]);
    }
  }
}

}  // namespace fd::kernels::ref
