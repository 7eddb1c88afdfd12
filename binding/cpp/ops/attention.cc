// Scaled dot-product attention on [B, H, N, D] or [B, N, H, D]: blocked with an online softmax
// (kernels/attention.h), so N×N scores are never stored.
//   saved: q, k, v, o and the per-query log-sum-exp
#include "core/dispatch.h"
#include "core/profile.h"
#include "core/stream.h"
#include "kernels/attention.h"
#include "ops.h"
#if FASTDIFF_WITH_CUDA
#include "cuda/attention.h"
#endif

namespace fd::ops {
namespace {

struct AttentionBackward : Node {
  kernels::AttentionShape s;
  TensorPtr q, k, v, o, lse;
  const char* name() const override { return "attention"; }
  std::vector<TensorPtr> apply(const std::vector<TensorPtr>& g) override {
    if (!g[0]) return {nullptr, nullptr, nullptr};
    TensorPtr go = g[0], gq = empty(q->shape, q->device()), gk = empty(k->shape, k->device()),
              gv = empty(v->shape, v->device());
    TensorPtr qs = q, ks = k, vs = v, os = o, ls = lse;
    const kernels::AttentionShape shape = s;
    const Device dev = q->device();
    launch("attention_backward", [=] {
      FD_DISPATCH(dev, attention_backward, shape, qs->data(), ks->data(), vs->data(), os->data(), ls->data(),
                  go->data(), gq->data(), gk->data(), gv->data());
    });
    return {gq, gk, gv};
  }
  void release() override { q = k = v = o = lse = nullptr; }
};

}  // namespace

TensorPtr attention(const TensorPtr& q, const TensorPtr& k, const TensorPtr& v, float scale, bool tokens_major) {
  check_same_device("attention", q, k);
  check_same_device("attention", q, v);
  // Axes of the heads and the tokens: [B, H, N, D], or [B, N, H, D] tokens-major.
  const int ha = tokens_major ? 2 : 1, na = tokens_major ? 1 : 2;
  const bool ranks = q->dim() == 4 && k->dim() == 4 && v->dim() == 4;
  FD_CHECK(ranks && q->shape[0] == k->shape[0] && q->shape[ha] == k->shape[ha] && q->shape[3] == k->shape[3] &&
               k->shape[0] == v->shape[0] && k->shape[ha] == v->shape[ha] && k->shape[na] == v->shape[na],
           ErrorCode::Shape, "attention: expected ",
           tokens_major ? "q [B, Nq, H, D], k [B, Nk, H, D], v [B, Nk, H, Dv]" : "q [B, H, Nq, D], k [B, H, Nk, D], v [B, H, Nk, Dv]",
           ", got ", shape_str(q->shape), ", ", shape_str(k->shape), ", ", shape_str(v->shape));
  if (tokens_major && q->device().type == DeviceType::CUDA) {  // the CUDA kernels read heads-major tensors
    auto heads = [](const TensorPtr& t) { return permute(t, {0, 2, 1, 3}); };
    return permute(attention(heads(q), heads(k), heads(v), scale, false), {0, 2, 1, 3});
  }
  kernels::AttentionShape s{q->shape[0], q->shape[ha], q->shape[na], k->shape[na], q->shape[3], v->shape[3], scale,
                            tokens_major};
  FD_CHECK(s.Nk > 0 || s.Nq == 0, ErrorCode::Shape, "attention: no keys (k ", shape_str(k->shape), ")");
  TensorPtr o = empty(tokens_major ? Shape{s.B, s.Nq, s.H, s.Dv} : Shape{s.B, s.H, s.Nq, s.Dv}, q->device());
  TensorPtr lse = empty({s.B, s.H, s.Nq}, q->device());
  count_flops(2.0 * double(s.B * s.H * s.Nq) * double(s.Nk) * double(s.D + s.Dv));  // QKᵀ and PV
  const Device dev = q->device();
  launch("attention",
         [=] { FD_DISPATCH(dev, attention_forward, s, q->data(), k->data(), v->data(), o->data(), lse->data()); });
  if (any_requires_grad({&q, &k, &v})) {
    auto node = std::make_shared<AttentionBackward>();
    node->s = s;
    node->q = save(q), node->k = save(k), node->v = save(v), node->o = save(o), node->lse = lse;
    record(node, {q, k, v}, {o});
  }
  return o;
}

}  // namespace fd::ops
