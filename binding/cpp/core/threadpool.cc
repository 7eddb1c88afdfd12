#include "threadpool.h"

#include <algorithm>
#include <atomic>
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

// A job is published by bumping `generation`; each worker runs its share, then
// decrements `pending`. Only one job runs at a time (`submit_mutex`), so callers
// from several streams (worker_threads) queue instead of oversubscribing cores.
struct ThreadPool::Impl {
  std::vector<std::thread> workers;
  std::mutex submit_mutex;
  std::mutex wake_mutex;
  std::condition_variable wake;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  std::atomic<bool> stop{false};
  const std::function<void(int, int)>* job = nullptr;
  int job_threads = 0;
  int threads = 1;

  void worker_loop(int tid, uint64_t seen) {
    tls_in_parallel = true;
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
      // Every worker acknowledges every job, so none can lag into the next one.
      if (tid < job_threads) (*job)(tid, job_threads);
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void start(int n) {
    threads = n;
    stop = false;
    // New workers start from the current generation: earlier jobs are not theirs.
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
  const int n = std::max(1, std::min(max_threads, impl_->threads));
  if (n == 1 || tls_in_parallel) {
    fn(0, 1);
    return;
  }
  std::lock_guard<std::mutex> lock(impl_->submit_mutex);
  impl_->job = &fn;
  impl_->job_threads = n;
  impl_->pending.store(impl_->threads - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> wl(impl_->wake_mutex);
    impl_->generation.fetch_add(1, std::memory_order_acq_rel);
  }
  impl_->wake.notify_all();
  tls_in_parallel = true;
  fn(0, n);
  tls_in_parallel = false;
  while (impl_->pending.load(std::memory_order_acquire) != 0) FD_PAUSE();
  impl_->job = nullptr;
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

}  // namespace fd
