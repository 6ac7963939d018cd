#include "runtime/stream.h"

#include "core/error.h"

namespace latte {

Stream::Stream(std::function<void()> thread_init) : worker_([this, thread_init] { loop(thread_init); }) {}

Stream::~Stream() {
  drop_pending();
  {
    std::lock_guard<std::mutex> lock(mu_);
    Task stop;
    stop.shutdown = true;
    q_.push_back(std::move(stop));
  }
  cv_.notify_one();
  join();
}

void Stream::join() {
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void Stream::push(Task t) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(std::move(t));
    wake = idle_;
  }
  if (wake) cv_.notify_one();
}

int64_t Stream::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int64_t(q_.size());
}

size_t Stream::drop_pending() {
  std::deque<Task> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // keep shutdown sentinels so dispose still completes
    std::deque<Task> keep;
    for (auto& t : q_) (t.shutdown ? keep : dropped).push_back(std::move(t));
    q_.swap(keep);
  }
  auto err = std::make_exception_ptr(EngineError(code::kAborted, "dropped before it ran"));
  for (auto& t : dropped)
    if (t.complete) t.complete(err);
  return dropped.size();
}

void Stream::loop(std::function<void()> thread_init) {
  thread_init();
  for (;;) {
    Task t;
    {
      std::unique_lock<std::mutex> lock(mu_);
      idle_ = true;
      cv_.wait(lock, [&] { return !q_.empty(); });
      idle_ = false;
      t = std::move(q_.front());
      q_.pop_front();
    }
    if (t.shutdown && !t.complete) return;  // the destructor's stop sentinel
    if (!t.complete) {  // compute task
      if (held_) continue;
      try {
        t.run();
      } catch (...) {
        held_ = std::current_exception();
      }
      ops_run_++;
      continue;
    }
    std::exception_ptr err = held_;
    held_ = nullptr;
    if (!err) {
      try {
        if (t.run) t.run();
      } catch (...) {
        err = std::current_exception();
      }
    }
    t.complete(err);
    if (t.shutdown) return;
  }
}

}  // namespace latte
