// latte-flow engine: the public C++ API (the bindings are its only user).
//
// An Engine owns one backend and one stream. Every operation is enqueued and returns at once with
// the output tensors' shapes known (bad shapes/dtypes/attributes throw EngineError synchronously);
// the stream's worker runs operations in order. Results come back only through read() and fence(),
// whose callbacks run on the worker thread. An error raised while running an operation is held and
// reported by the next read or fence; later operations are skipped until it has been reported.
#pragma once
#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend_info.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace latte {

namespace io {
class Checkpoint;
}

struct EngineOptions {
  std::string backend = "auto";  // "auto" | "cpu" | "cuda"
  int threads = 0;               // CPU threads for this engine; 0 = all cores
};

// the backends this binary carries and this machine offers (runtime/backend_select.cc)
BackendInfo backend_info();

struct EngineStats {
  int64_t bytes_in_use = 0, peak_bytes = 0;
  int64_t ops_enqueued = 0, ops_run = 0, pending = 0;
  int64_t programs_recorded = 0, replays = 0;
  int64_t captured_launches = 0, capture_failures = 0;  // replays run as one captured graph; captures refused
};

class Stream;
class Program;  // runtime/program.h: a recorded op sequence with buffers of its own

class Engine {
 public:
  using Done = std::function<void(std::exception_ptr)>;
  using ReadDone = std::function<void(std::vector<uint8_t>&&, std::exception_ptr)>;

  explicit Engine(const EngineOptions& opts);  // throws E_BACKEND_UNAVAILABLE
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const std::string& backend_name() const { return backend_name_; }
  const std::string& backend_reason() const { return backend_reason_; }
  int threads() const { return threads_; }

  // Inputs: one per op operand, nullptr for an absent optional operand.
  std::vector<Tensor> enqueue(Op op, const std::vector<const Tensor*>& inputs, const OpAttrs& attrs);
  Tensor upload(DType dtype, const Shape& shape, const void* data, size_t bytes);  // copies data now
  Tensor reshape(const Tensor& t, const Shape& shape);                          // a view, no work
  // A checkpoint tensor, copied from the mapping on the stream. `as`: the engine dtype to load it
  // as; nullptr keeps its own (F64 -> f32, integers -> i32). Throws E_BAD_WEIGHTS / E_DTYPE now.
  Tensor load(std::shared_ptr<io::Checkpoint> ck, const std::string& name, const DType* as);
  // Programs: `body` enqueues ops on placeholders shaped like `like` and returns its outputs; nothing
  // runs while recording (reads and fences are refused). replay() runs the recorded ops on new inputs
  // of the same dtypes and shapes and returns fresh output tensors; on CUDA, from the second replay
  // on, as one captured graph. Only ops can be recorded: an upload inside the body is a constant.
  using Body = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
  std::shared_ptr<Program> record(const std::vector<Tensor>& like, const Body& body);
  std::vector<Tensor> replay(const std::shared_ptr<Program>& p, const std::vector<const Tensor*>& inputs);

  void read(const Tensor& t, ReadDone done);
  void fence(Done done);
  size_t drop_pending();      // skip everything not yet started; their reads/fences get E_ABORTED
  void dispose(bool drop, Done done);  // drain (or drop), free all memory, stop the worker
  void join();                         // after dispose's callback: reap the worker thread
  bool disposed() const { return disposed_; }
  EngineStats stats() const;

 private:
  void check_live() const;
  std::string backend_name_, backend_reason_;
  int threads_ = 1;
  bool disposed_ = false;
  uint64_t id_;  // unique per process: tensors carry it, so a tensor never passes for another engine's
  std::unique_ptr<class Backend> backend_;
  std::shared_ptr<class MemoryPool> pool_;
  std::unique_ptr<Stream> stream_;
  int64_t ops_enqueued_ = 0;
  Program* recording_ = nullptr;  // set while record() runs its body
  int64_t programs_recorded_ = 0, replays_ = 0;
  struct WorkerCounts {  // counted on the worker thread
    std::atomic<int64_t> captured_launches{0}, capture_failures{0};
  };
  std::shared_ptr<WorkerCounts> counts_;
};

}  // namespace latte
