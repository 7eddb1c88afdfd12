// The CPU stream: ops enqueue kernels here and return at once; a worker thread
// runs them in order (each kernel parallelizes itself on the global ThreadPool).
// One stream per JS thread (main thread and each worker_thread get their own).
// Kernel-side failures are kept and rethrown at the next synchronization point,
// naming the op that failed. FASTDIFF_SYNC=1 runs every kernel inline.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "error.h"

namespace fd {

class Stream {
 public:
  explicit Stream(bool synchronous);
  ~Stream();  // drains the queue, then joins the worker
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Queues `kernel`; returns its ticket (increasing). Blocks only when more than
  // kMaxPending kernels are waiting (back-pressure keeps memory bounded).
  uint64_t enqueue(const char* op, std::function<void()> kernel);
  // Blocks until every kernel up to `ticket` has run (0: everything queued so far).
  void wait(uint64_t ticket = 0);
  // wait(), then rethrows (and clears) the first deferred kernel error.
  void synchronize();
  // Like synchronize() but returns the error instead of throwing (for async readers).
  std::optional<Error> wait_and_take_error(uint64_t ticket);
  uint64_t last_ticket() const;
  // Calls `done` once every kernel up to `ticket` has run, with the first deferred kernel error taken as
  // wait_and_take_error takes it: on the worker right after that kernel, or at once on the calling thread
  // when it has already run and no earlier callback is still being run by the worker. Callbacks run in the
  // order they were registered when their tickets do not decrease (reads wait for the last kernel queued, so
  // theirs never do). `done` must not throw, nor enqueue on or wait for this stream.
  void when_done(uint64_t ticket, std::function<void(std::optional<Error>)> done);
  bool synchronous() const { return synchronous_; }

  static constexpr int kMaxPending = 1024;

  struct Impl;

 private:
  bool synchronous_;
  std::unique_ptr<Impl> impl_;
};

// The stream of the calling JS thread (set by the binding when the addon loads in
// that thread; a process without one gets a synchronous fallback stream).
Stream& current_stream();
void set_current_stream(Stream* stream);

// Enqueue on the current stream.
inline uint64_t launch(const char* op, std::function<void()> kernel) {
  return current_stream().enqueue(op, std::move(kernel));
}

}  // namespace fd
