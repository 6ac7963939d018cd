// A recorded op sequence (Engine::record / Engine::replay).
//
// Recording runs nothing: every op the body enqueues is kept as a task over buffers the program owns
// (its placeholders, intermediates and outputs), allocated at the first run and reused by every
// replay. A replay copies the caller's inputs into the placeholders, runs the tasks, and copies the
// outputs into fresh tensors, so results never alias the next replay. Tensors created outside the
// body (weights, a prompt's K/V cache, uploads made while recording) are the program's constants.
//
// From the second run on, a backend that can capture (CUDA) records the tasks' device work once as a
// graph and launches that instead: one launch per replay, no per-op host work.
//
// The body's intermediates share memory (the memory plan): only its returned outputs may be kept.
// An intermediate tensor held past record() would alias other buffers and dangle with the program.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace latte {

struct ProgramOp {
  std::function<void()> run;  // may throw EngineError
  std::vector<const Buffer*> reads;
  std::vector<std::pair<Buffer*, size_t>> writes;  // output buffers and their sizes
};

class Program {
 public:
  std::vector<Tensor> inputs;    // placeholders: replay copies the caller's tensors here
  std::vector<Tensor> outputs;   // the body's results: replay returns copies of them
  std::vector<ProgramOp> ops;    // in enqueue order
  uint64_t owner = 0;            // the engine that recorded it
  // Memory plan (plan_memory): intermediates share one arena by lifetime (an op's outputs never
  // overlap its inputs); the outputs and placeholders get buffers of their own.
  struct Placed {
    Buffer* buf;
    size_t offset, bytes;
  };
  std::vector<Placed> placed;
  std::vector<std::pair<Buffer*, size_t>> own;
  size_t arena_bytes = 0;
  std::shared_ptr<Buffer> arena = std::make_shared<Buffer>();
  // Touched only on the engine's worker thread:
  bool allocated = false;        // the plan's memory exists (first run)
  int runs = 0;                  // completed runs
  bool capture_failed = false;   // the backend could not capture it: runs op by op
  std::shared_ptr<void> captured;  // the backend's captured form (a CUDA graph exec); destroyed first

  void plan_memory();
  void allocate(class MemoryPool& pool);
};

}  // namespace latte
