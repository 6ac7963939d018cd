// The engine's stream: one worker thread runs tasks in enqueue order.
// Compute tasks have no completion; sync tasks (read, fence, shutdown) report to a callback.
// The first error of a compute task is held: later compute tasks are skipped (their outputs stay
// not ready) and the next sync task reports that error instead of running.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"

namespace latte {

struct Task {
  std::function<void()> run;                           // may throw EngineError
  std::function<void(std::exception_ptr)> complete;    // null for compute tasks
  bool shutdown = false;
};

class Stream {
 public:
  explicit Stream(std::function<void()> thread_init);
  ~Stream();
  void push(Task t);
  size_t drop_pending();
  void join();
  int64_t ops_run() const { return ops_run_; }
  int64_t pending() const;

 private:
  void loop(std::function<void()> thread_init);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> q_;
  std::exception_ptr held_;
  bool idle_ = false;  // the worker sleeps on cv_: only then does push() pay for a wake-up
  std::atomic<int64_t> ops_run_{0};
  std::thread worker_;
};

}  // namespace latte
