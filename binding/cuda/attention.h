// CUDA scaled dot-product attention: the twins of fd::kernels::attention_forward and
// attention_backward (kernels/attention.h), same AttentionShape and semantics, device
// pointers, launched on the current device's stream. FlashAttention-2 (Dao 2023): the
// Nq×Nk score matrix is never stored, the backward pass recomputes it from lse.
//
// Precision follows fd::matmul_precision() (core/precision.h) when the kernel is run:
// "high" TF32 and "medium" BF16 tensor cores for head dims D, Dv <= 128; "highest", and
// any larger head dim, use a float32 FMA kernel. Storage and accumulation are float32.
// Results are deterministic: no atomics, every output element has one writer.
#pragma once
#include "kernels/attention.h"

namespace fd::cuda {

using kernels::AttentionShape;

// q [B,H,Nq,D], k [B,H,Nk,D], v [B,H,Nk,Dv] → o [B,H,Nq,Dv] and lse [B,H,Nq] (overwritten).
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse);

// Given go = dL/do, overwrites gq, gk, gv.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv);

}  // namespace fd::cuda
