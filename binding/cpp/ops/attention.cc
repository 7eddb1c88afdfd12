// Scaled dot-product attention on [B, H, N, D]: blocked with an online softmax
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

TensorPtr attention(const TensorPtr& q, const TensorPtr& k, const TensorPtr& v, float scale) {
  check_same_device("attention", q, k);
  check_same_device("attention", q, v);
  const bool ranks = q->dim() == 4 && k->dim() == 4 && v->dim() == 4;
  FD_CHECK(ranks && q->shape[0] == k->shape[0] && q->shape[1] == k->shape[1] && q->shape[3] == k->shape[3] &&
               k->shape[0] == v->shape[0] && k->shape[1] == v->shape[1] && k->shape[2] == v->shape[2],
           ErrorCode::Shape, "attention: expected q [B, H, Nq, D], k [B, H, Nk, D], v [B, H, Nk, Dv], got ",
           shape_str(q->shape), ", ", shape_str(k->shape), ", ", shape_str(v->shape));
  kernels::AttentionShape s{q->shape[0], q->shape[1], q->shape[2], k->shape[2], q->shape[3], v->shape[3], scale};
  FD_CHECK(s.Nk > 0 || s.Nq == 0, ErrorCode::Shape, "attention: no keys (k ", shape_str(k->shape), ")");
  TensorPtr o = empty({s.B, s.H, s.Nq, s.Dv}, q->device());
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
