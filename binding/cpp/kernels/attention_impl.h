// Internal interface between the attention dispatcher (kernels/attention.cc,
// compiled at the baseline ISA) and the per-ISA attention kernels. Plain
// functions only: ISA-compiled files must not share inline code or templates
// with baseline code (ODR), so nothing here is inline.
//
// Work is split into tasks the dispatcher hands to threads:
//   forward:  task t = (bh, query block) with bh = t / qblocks, block = t % qblocks
//   backward: task t = bh (one (b, h) head; that head's gq/gk/gv rows are written
//             only by the thread that owns the task, so there are no races and the
//             summation order never depends on the thread count).
// `scratch` is a 64-byte-aligned per-thread buffer of at least *_scratch_floats().
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/attention.h"

namespace fd::kernels {

namespace ref {
// The plain oracle: one row of scores at a time, double accumulation; heads [bh_begin, bh_end).
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                       int64_t bh_begin, int64_t bh_end);
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                        int64_t bh_end);
}  // namespace ref

namespace impl {

int64_t attention_fwd_tasks_avx2(const AttentionShape& s);
size_t attention_fwd_scratch_floats_avx2(const AttentionShape& s);
void attention_fwd_avx2(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                        int64_t task_begin, int64_t task_end, float* scratch);
size_t attention_bwd_scratch_floats_avx2(const AttentionShape& s);
void attention_bwd_avx2(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                        int64_t bh_end, float* scratch);

int64_t attention_fwd_tasks_avx512(const AttentionShape& s);
size_t attention_fwd_scratch_floats_avx512(const AttentionShape& s);
void attention_fwd_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse,
                          int64_t task_begin, int64_t task_end, float* scratch);
size_t attention_bwd_scratch_floats_avx512(const AttentionShape& s);
void attention_bwd_avx512(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                          const float* lse, const float* go, float* gq, float* gk, float* gv, int64_t bh_begin,
                          int64_t bh_end, float* scratch);

}  // namespace impl
}  // namespace fd::kernels
