// One process-wide pool serves every CPU kernel. Workers spin briefly before
// sleeping so back-to-back kernels do not pay a futex wake-up each; a nested
// parallel_for (called from inside a parallel region) runs inline, so pools never
// compete. Size: FASTDIFF_NUM_THREADS, default all cores.
#pragma once
#include <cstdint>
#include <functional>

namespace fd {

class ThreadPool {
 public:
  static ThreadPool& global();

  int num_threads() const;

  // Calls fn(begin, end) over disjoint chunks covering [0, n), each at least
  // `grain` long (except the last). The caller takes part; returns when all
  // chunks are done. Chunk boundaries depend only on (n, grain, num_threads).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // parallel_for for work whose results do not depend on where it is cut (elementwise ops, GEMM rows, independent
  // tasks), n items of equal cost. On two threads the cut follows their measured speeds: the 2-vCPU VM of
  // bench/RESULTS.md at times runs memory-heavy work ~25% slower on one vCPU than on the other (same FMA rate), for
  // minutes, and equal halves would wait for it. Each such job's timing refines the estimate (per thread: the
  // pool's worker vs whichever thread submits). Other thread counts, or fewer than 2·grain items: as
  // parallel_for(n, grain, fn).
  void parallel_for_balanced(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Calls fn(tid, nthreads) exactly once on each of nthreads = min(num_threads, max_threads) threads.
  void run_on_all(const std::function<void(int, int)>& fn, int max_threads = 1 << 30);

  // True inside a parallel region (nested calls run serially).
  static bool in_parallel();

  // Changes the worker count (testing / fd.setNumThreads); must not be called from a kernel.
  void resize(int threads);

  struct Impl;

 private:
  explicit ThreadPool(int threads);
  Impl* impl_;
};

}  // namespace fd
