// Public attention entry points: dispatch on fd::active_isa() and threading.
// Forward: tasks are (b, h, query block), split over the pool's threads. Backward:
// tasks are whole (b, h) heads, so every gq/gk/gv row is written by exactly one
// thread and the summation order never depends on the thread count (results are
// bit-identical for any thread count).
// Scratch: one 64-byte-aligned buffer per executing thread, reused across calls.
#include <atomic>
#include <cmath>
#include <cstdlib>

#include "core/cpu.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/attention.h"
#include "kernels/attention_impl.h"
#include "kernels/scratch.h"

namespace fd::kernels {
namespace {

thread_local ScratchBuf tls_scratch;

// Never throws (runs inside worker threads); returns null if allocation fails.
float* thread_scratch(size_t floats) { return tls_scratch.get(floats); }

// Splits [0, ntasks) over the pool (tasks are independent, so where the cut falls changes no result: on two
// threads it follows their speeds) and calls body(begin, end, scratch) per chunk.
template <typename Body>
void run_tasks(int64_t ntasks, size_t scratch_floats, const Body& body) {
  if (ntasks <= 0) return;
  std::atomic<bool> oom{false};
  ThreadPool::global().parallel_for_balanced(ntasks, 1, [&](int64_t begin, int64_t end) {
    float* scratch = thread_scratch(scratch_floats);
    if (!scratch) {
      oom.store(true);
      return;
    }
    body(begin, end, scratch);
  });
  FD_CHECK(!oom.load(), ErrorCode::Memory, "attention: cannot allocate ", scratch_floats * sizeof(float),
           " bytes of kernel scratch");
}

// Scalar ISA: the reference, run per head (heads are independent) on the pool.
void ref_forward_threaded(const AttentionShape& s, const float* q, const float* k, const float* v, float* o,
                          float* lse) {
  ThreadPool::global().parallel_for(s.B * s.H, 1, [&](int64_t b0, int64_t b1) {
    ref::attention_forward(s, q, k, v, o, lse, b0, b1);
  });
}

void ref_backward_threaded(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                           const float* lse, const float* go, float* gq, float* gk, float* gv) {
  ThreadPool::global().parallel_for(s.B * s.H, 1, [&](int64_t b0, int64_t b1) {
    ref::attention_backward(s, q, k, v, o, lse, go, gq, gk, gv, b0, b1);
  });
}

}  // namespace

int64_t head_offset(const AttentionShape& s, int64_t bh, int64_t n, int64_t d) {
  if (!s.tokens_major) return bh * n * d;
  const int64_t b = bh / s.H, h = bh % s.H;
  return (b * n * s.H + h) * d;
}

int64_t row_stride(const AttentionShape& s, int64_t d) { return s.tokens_major ? s.H * d : d; }

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* o, float* lse) {
  const int64_t BH = s.B * s.H;
  if (BH <= 0 || s.Nq <= 0) return;
  if (s.Nk <= 0) {  // empty softmax: o = 0, lse = -inf
    for (int64_t x = 0; x < BH * s.Nq * s.Dv; ++x) o[x] = 0.f;
    for (int64_t x = 0; x < BH * s.Nq; ++x) lse[x] = -INFINITY;
    return;
  }
  switch (active_isa()) {
    case Isa::Avx512:
      run_tasks(impl::attention_fwd_tasks_avx512(s), impl::attention_fwd_scratch_floats_avx512(s),
                [&](int64_t b, int64_t e, float* scr) { impl::attention_fwd_avx512(s, q, k, v, o, lse, b, e, scr); });
      return;
    case Isa::Avx2:
      run_tasks(impl::attention_fwd_tasks_avx2(s), impl::attention_fwd_scratch_floats_avx2(s),
                [&](int64_t b, int64_t e, float* scr) { impl::attention_fwd_avx2(s, q, k, v, o, lse, b, e, scr); });
      return;
    default:
      ref_forward_threaded(s, q, k, v, o, lse);
      return;
  }
}

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* o,
                        const float* lse, const float* go, float* gq, float* gk, float* gv) {
  const int64_t BH = s.B * s.H;
  if (BH <= 0) return;
  if (s.Nq <= 0 || s.Nk <= 0) {  // nothing flows: all gradients are zero
    for (int64_t x = 0; x < BH * s.Nq * s.D; ++x) gq[x] = 0.f;
    for (int64_t x = 0; x < BH * s.Nk * s.D; ++x) gk[x] = 0.f;
    for (int64_t x = 0; x < BH * s.Nk * s.Dv; ++x) gv[x] = 0.f;
    return;
  }
  switch (active_isa()) {
    case Isa::Avx512:
      run_tasks(BH, impl::attention_bwd_scratch_floats_avx512(s), [&](int64_t b, int64_t e, float* scr) {
        impl::attention_bwd_avx512(s, q, k, v, o, lse, go, gq, gk, gv, b, e, scr);
      });
      return;
    case Isa::Avx2:
      run_tasks(BH, impl::attention_bwd_scratch_floats_avx2(s), [&](int64_t b, int64_t e, float* scr) {
        impl::attention_bwd_avx2(s, q, k, v, o, lse, go, gq, gk, gv, b, e, scr);
      });
      return;
    default:
      ref_backward_threaded(s, q, k, v, o, lse, go, gq, gk, gv);
      return;
  }
}

}  // namespace fd::kernels
