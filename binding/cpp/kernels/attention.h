// Scaled dot-product attention on [B, H, N, D] tensors (or [B, N, H, D]: tokens_major), computed in
// blocks with an online softmax: the Nq×Nk score matrix is never materialized (memory O(N·D)).
// Dispatches on fd::active_isa() like every kernel family.
#pragma once
#include <cstdint>

namespace fd::kernels {

struct AttentionShape {
  int64_t B, H;  // batch, heads (q, k, v share them)
  int64_t Nq, Nk;  // query and key/value tokens (self-attention: Nq == Nk)
  int64_t D;   // q/k head dim
  int64_t Dv;  // v/o head dim
  float scale;  // usually 1/sqrt(D)
  // q, k, v, o and their gradients are [B, N, H, D] — the token rows the projections produce, so a
  // transformer needs no permutes around the attention; lse stays [B, H, Nq].
  bool tokens_major = false;
};

// Where head bh = b·H + h of a tensor with n tokens of d features per head starts, and the distance
// between its token rows, in either layout.
int64_t head_offset(const AttentionShape& s, int64_t bh, int64_t n, int64_t d);
int64_t row_stride(const AttentionShape& s, int64_t d);

// q [B,H,Nq,D], k [B,H,Nk,D], v [B,H,Nk,Dv] → o [B,H,Nq,Dv] (overwritten; tokens_major: N before H) and
// lse [B,H,Nq] = log Σ_j exp(scale·q·k_j) (overwritten; saved for backward).
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse);

// Given go = dL/do, overwrites gq, gk, gv. Recomputes probabilities from lse.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv);

}  // namespace fd::kernels
