#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define FD_PAUSE() _mm_pause()
#else
#define FD_PAUSE() ((void)0)
#endif

namespace fd {
namespace {

thread_local bool tls_in_parallel = false;
thread_local int tls_slot = 0;  // 0: a thread outside the pool (the submitter); 1..n-1: the pool's workers

int default_threads() {
  if (const char* env = std::getenv("FASTDIFF_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return std::min(n, 256);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Spin this many pause-loops (~a few tens of µs) before sleeping on the condition variable.
constexpr int kSpinIterations = 20000;

}  // namespace

// A job is a function of (logical tid, n). Its n chunks are claimed from one atomic
// ticket word, so whichever threads are running take them: a worker the OS has not
// scheduled costs nothing (the caller takes its chunks) instead of a whole time slice.
// The ticket packs (job sequence, n, next index), so a late worker can never claim a
// chunk of a finished job, and a successful claim proves the job (and `job`) is live.
// Only one job runs at a time (`submit_mutex`), so callers from several streams
// (worker_threads) queue instead of oversubscribing cores.
struct ThreadPool::Impl {
  std::vector<std::thread> workers;
  std::mutex submit_mutex;
  std::mutex wake_mutex;
  std::condition_variable wake;
  std::atomic<uint64_t> generation{0};  // bumped per job: wakes the workers
  std::atomic<uint64_t> ticket{0};      // sequence:32 | n:16 | next:16
  std::atomic<int> done{0};             // chunks finished in the current job
  std::atomic<bool> stop{false};
  // (time per item on the worker) / (time per item on the submitting thread), averaged over balanced jobs;
  // FASTDIFF_SPEED_RATIO fixes it (tests: cuts far from the middle must not change any result).
  const double fixed_ratio = [] {
    const char* env = std::getenv("FASTDIFF_SPEED_RATIO");
    return env ? std::atof(env) : 0.0;
  }();
  std::atomic<double> speed_ratio{fixed_ratio > 0 ? fixed_ratio : 1.0};
  const std::function<void(int, int)>* job = nullptr;
  uint32_t sequence = 0;
  int threads = 1;

  static uint64_t pack(uint32_t seq, int n, int next) { return (uint64_t(seq) << 32) | (uint64_t(n) << 16) | uint64_t(next); }

  // Claims the next chunk of the job that `word` belongs to; false once none is left (or the job changed).
  bool claim(uint32_t seq, int* tid, int* n) {
    uint64_t cur = ticket.load(std::memory_order_acquire);
    for (;;) {
      const int count = int((cur >> 16) & 0xffff), next = int(cur & 0xffff);
      if (uint32_t(cur >> 32) != seq || next >= count) return false;
      if (ticket.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        *tid = next;
        *n = count;
        return true;
      }
    }
  }

  // Runs chunks of job `seq` until none is left.
  void work(uint32_t seq) {
    int tid, n;
    while (claim(seq, &tid, &n)) {
      (*job)(tid, n);
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void worker_loop(int slot, uint64_t seen) {
    tls_in_parallel = true;
    tls_slot = slot;
    for (;;) {
      uint64_t gen = generation.load(std::memory_order_acquire);
      for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
        FD_PAUSE();
        gen = generation.load(std::memory_order_acquire);
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(wake_mutex);
        wake.wait(lock, [&] { return generation.load(std::memory_order_acquire) != seen || stop.load(); });
        gen = generation.load(std::memory_order_acquire);
      }
      if (stop.load()) return;
      seen = gen;
      work(uint32_t(ticket.load(std::memory_order_acquire) >> 32));
    }
  }

  void start(int n) {
    threads = n;
    stop = false;
    const uint64_t now = generation.load(std::memory_order_acquire);
    for (int tid = 1; tid < n; ++tid) workers.emplace_back([this, tid, now] { worker_loop(tid, now); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(wake_mutex);
      stop = true;
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    wake.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }
};

ThreadPool::ThreadPool(int threads) : impl_(new Impl) { impl_->start(threads); }

ThreadPool& ThreadPool::global() {
  // Never destroyed: worker threads end with the process.
  static ThreadPool* pool = new ThreadPool(default_threads());
  return *pool;
}

int ThreadPool::num_threads() const { return impl_->threads; }

bool ThreadPool::in_parallel() { return tls_in_parallel; }

void ThreadPool::resize(int threads) {
  threads = std::max(1, std::min(threads, 256));
  std::lock_guard<std::mutex> lock(impl_->submit_mutex);
  if (threads == impl_->threads) return;
  impl_->shutdown();
  impl_->start(threads);
}

void ThreadPool::run_on_all(const std::function<void(int, int)>& fn, int max_threads) {
  const int n = std::max(1, std::min({max_threads, impl_->threads, 0xffff}));
  if (n == 1 || tls_in_parallel) {
    fn(0, 1);
    return;
  }
  Impl& p = *impl_;
  std::lock_guard<std::mutex> lock(p.submit_mutex);
  const uint32_t seq = ++p.sequence;
  p.job = &fn;
  p.done.store(0, std::memory_order_relaxed);
  p.ticket.store(Impl::pack(seq, n, 0), std::memory_order_release);
  {
    std::lock_guard<std::mutex> wl(p.wake_mutex);
    p.generation.fetch_add(1, std::memory_order_acq_rel);
  }
  p.wake.notify_all();
  tls_in_parallel = true;
  p.work(seq);
  tls_in_parallel = false;
  // Chunks claimed by other threads may still run; spin briefly, then yield the core
  // (on an oversubscribed machine the thread we wait for may need it).
  for (int spin = 0; p.done.load(std::memory_order_acquire) != n; ++spin) {
    if (spin < 4096) FD_PAUSE();
    else std::this_thread::yield();
  }
  p.job = nullptr;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int threads = static_cast<int>(std::min<int64_t>(max_chunks, num_threads()));
  if (threads <= 1 || tls_in_parallel) {
    fn(0, n);
    return;
  }
  run_on_all(
      [&](int tid, int nt) {
        const int64_t begin = n * tid / nt;
        const int64_t end = n * (tid + 1) / nt;
        if (begin < end) fn(begin, end);
      },
      threads);
}

void ThreadPool::parallel_for_balanced(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (impl_->threads != 2 || tls_in_parallel || n < 2 * std::max<int64_t>(grain, 1)) {
    parallel_for(n, grain, fn);
    return;
  }
  // The first of the two chunks to start takes [0, cut) sized by its own thread's share, the other the rest
  // (also when one thread runs both because the other was late).
  const double r = impl_->speed_ratio.load(std::memory_order_relaxed);
  std::atomic<int64_t> cut{-1};
  double ns[2] = {0, 0}, items[2] = {0, 0};  // per slot, each written by its own thread
  run_on_all(
      [&](int, int) {
        const int slot = tls_slot == 0 ? 0 : 1;
        const double share = slot == 0 ? r / (1.0 + r) : 1.0 / (1.0 + r);
        const int64_t want = std::min<int64_t>(n, std::llround(share * double(n)));
        int64_t b = 0, e = want, expected = -1;
        if (!cut.compare_exchange_strong(expected, want)) b = expected, e = n;
        if (b >= e) return;
        const auto t0 = std::chrono::steady_clock::now();
        fn(b, e);
        ns[slot] += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
        items[slot] += double(e - b);
      },
      2);
  if (impl_->fixed_ratio <= 0 && items[0] > 0 && items[1] > 0 && ns[0] > 0) {  // both ran a chunk: fold in
    const double sample = std::min(2.0, std::max(0.5, (ns[1] / items[1]) / (ns[0] / items[0])));
    impl_->speed_ratio.store(0.9 * r + 0.1 * sample, std::memory_order_relaxed);
  }
}

}  // namespace fd
