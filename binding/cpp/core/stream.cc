#include "stream.h"

#include "allocator.h"
#include "profile.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define FD_STREAM_PAUSE() _mm_pause()
#else
#define FD_STREAM_PAUSE() ((void)0)
#endif

namespace fd {
namespace {
constexpr int kSpin = 4000;  // ~ tens of µs of pause before the worker sleeps

// Memory back-pressure (FASTDIFF_QUEUE_MB, default 1024; 0: off). A queued kernel holds its tensors until it
// runs, so a host far ahead of the worker keeps every intermediate of the queued work alive at once — a
// sampler's queued network forwards add up to gigabytes. Once live bytes have grown by more than this since
// the queue was last drained, the producer waits for it to drain.
int64_t queue_budget_bytes() {
  static const int64_t budget = [] {
    const char* env = std::getenv("FASTDIFF_QUEUE_MB");
    const long long mb = env ? std::atoll(env) : 1024;
    return int64_t(mb > 0 ? mb : 0) << 20;
  }();
  return budget;
}
}  // namespace

struct Stream::Impl {
  struct Task {
    const char* op;
    std::function<void()> kernel;
    uint64_t ticket;
  };
  std::mutex mutex;
  std::condition_variable work_ready;  // worker waits for tasks
  std::condition_variable progress;    // producers wait for completion / room
  std::deque<Task> queue;
  uint64_t next_ticket = 1;
  uint64_t done_ticket = 0;
  bool stop = false;
  std::optional<Error> error;
  std::thread worker;
  // Lock-free hints that let both sides skip futex syscalls on the hot path: the
  // worker spins briefly on `queued` before sleeping, and producers notify only a
  // worker that is (about to be) asleep.
  std::atomic<uint64_t> queued{0};
  std::atomic<bool> worker_sleeping{false};
  // The smallest ticket a waiter needs (under `mutex`): the worker wakes waiters only
  // when it is reached, not after every kernel (a reader waiting for a whole forward
  // would otherwise be woken hundreds of times, each a context switch stealing a core).
  uint64_t wake_at = UINT64_MAX;
  // when_done callbacks waiting for their ticket (one per pending read: few).
  std::vector<std::pair<uint64_t, std::function<void(std::optional<Error>)>>> on_done;
  // The worker is running callbacks it took from on_done (outside the lock): a callback registered meanwhile for a
  // finished ticket queues behind them rather than running at once, so reads resolve in program order.
  bool delivering = false;
  // Live host bytes when the queue last ran empty (memory back-pressure, see queue_budget_bytes).
  int64_t live_at_drain = 0;

  // Waits (holding `lock`) until done_ticket >= ticket.
  void wait_for(std::unique_lock<std::mutex>& lock, uint64_t ticket) {
    while (done_ticket < ticket) {
      wake_at = std::min(wake_at, ticket);
      progress.wait(lock);
    }
  }

  void run(Task& task) {
    try {
      if (profiling_enabled()) {
        const auto t0 = std::chrono::steady_clock::now();
        task.kernel();
        profile_record(task.op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        return;
      }
      task.kernel();
    } catch (const Error& e) {
      record(Error(e.code(), e.what()));
    } catch (const std::exception& e) {
      record(Error(ErrorCode::Internal, std::string(task.op) + ": " + e.what()));
    }
  }

  // Moves the callbacks whose ticket is done into `due`, in registration (= ticket) order, each with the
  // deferred error as wait_and_take_error would take it. Holding `mutex`.
  void take_due(std::vector<std::pair<std::function<void(std::optional<Error>)>, std::optional<Error>>>& due) {
    size_t kept = 0;
    for (auto& entry : on_done) {
      if (entry.first <= done_ticket) {
        std::optional<Error> e;
        e.swap(error);
        due.emplace_back(std::move(entry.second), std::move(e));
      } else {
        on_done[kept++] = std::move(entry);
      }
    }
    on_done.resize(kept);
  }

  void record(Error e) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error) error = std::move(e);
  }

  void loop() {
    uint64_t taken = 0;
    for (;;) {
      Task task;
      for (int spin = 0; spin < kSpin && queued.load(std::memory_order_acquire) == taken; ++spin) FD_STREAM_PAUSE();
      {
        std::unique_lock<std::mutex> lock(mutex);
        worker_sleeping.store(true, std::memory_order_seq_cst);
        work_ready.wait(lock, [&] { return stop || !queue.empty(); });
        worker_sleeping.store(false, std::memory_order_relaxed);
        if (queue.empty()) return;  // stop requested and drained
        task = std::move(queue.front());
        queue.pop_front();
        ++taken;
      }
      run(task);
      task.kernel = nullptr;  // drop captured tensors before reporting completion
      bool wake = false;
      std::vector<std::pair<std::function<void(std::optional<Error>)>, std::optional<Error>>> due;
      {
        std::lock_guard<std::mutex> lock(mutex);
        done_ticket = task.ticket;
        if (done_ticket >= wake_at) {
          wake = true;
          wake_at = UINT64_MAX;  // woken waiters that still need more re-register
        }
        if (!on_done.empty()) take_due(due);
        delivering = !due.empty();
      }
      if (wake) progress.notify_all();
      while (!due.empty()) {
        for (auto& [done, e] : due) done(std::move(e));
        due.clear();
        std::lock_guard<std::mutex> lock(mutex);
        take_due(due);  // registered while those ran, for finished tickets
        delivering = !due.empty();
      }
    }
  }
};

Stream::Stream(bool synchronous) : synchronous_(synchronous), impl_(new Impl) {
  if (!synchronous_) impl_->worker = std::thread([this] { impl_->loop(); });
}

Stream::~Stream() {
  if (!synchronous_) {
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      impl_->stop = true;
    }
    impl_->work_ready.notify_all();
    impl_->worker.join();
  }
}

uint64_t Stream::enqueue(const char* op, std::function<void()> kernel) {
  Impl& s = *impl_;
  if (synchronous_) {
    Impl::Task task{op, std::move(kernel), s.next_ticket++};
    s.run(task);
    s.done_ticket = task.ticket;
    return task.ticket;
  }
  uint64_t ticket;
  const int64_t budget = queue_budget_bytes();
  const int64_t live = budget > 0 ? HostAllocator::instance().stats().live_bytes : 0;
  {
    std::unique_lock<std::mutex> lock(s.mutex);
    // Back-pressure: every finished kernel was popped first, so one more done makes room.
    while (s.queue.size() >= size_t(kMaxPending)) s.wait_for(lock, s.done_ticket + 1);
    if (budget > 0) {
      if (s.done_ticket + 1 == s.next_ticket) {
        s.live_at_drain = live;  // nothing pending: the baseline
      } else if (live - s.live_at_drain > budget) {
        s.wait_for(lock, s.next_ticket - 1);
        s.live_at_drain = HostAllocator::instance().stats().live_bytes;  // what the drained work left
      }
    }
    ticket = s.next_ticket++;
    s.queue.push_back({op, std::move(kernel), ticket});
    s.queued.fetch_add(1, std::memory_order_release);
  }
  if (s.worker_sleeping.load(std::memory_order_seq_cst)) s.work_ready.notify_one();
  return ticket;
}

void Stream::wait(uint64_t ticket) {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (ticket == 0) ticket = s.next_ticket - 1;
  if (synchronous_) return;
  s.wait_for(lock, ticket);
}

std::optional<Error> Stream::wait_and_take_error(uint64_t ticket) {
  wait(ticket);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::optional<Error> e;
  e.swap(impl_->error);
  return e;
}

void Stream::when_done(uint64_t ticket, std::function<void(std::optional<Error>)> done) {
  Impl& s = *impl_;
  std::optional<Error> e;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.done_ticket < ticket || s.delivering) {
      s.on_done.emplace_back(ticket, std::move(done));
      return;
    }
    e.swap(s.error);
  }
  done(std::move(e));
}

void Stream::synchronize() {
  if (auto e = wait_and_take_error(0)) throw *e;
}

uint64_t Stream::last_ticket() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->next_ticket - 1;
}

namespace {
thread_local Stream* tls_stream = nullptr;
}

Stream& current_stream() {
  if (tls_stream) return *tls_stream;
  static thread_local Stream fallback(true);
  return fallback;
}

void set_current_stream(Stream* stream) { tls_stream = stream; }

}  // namespace fd

