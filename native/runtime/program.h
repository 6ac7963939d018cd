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
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace latte {

class Program {
 public:
  std::vector<Tensor> inputs;    // placeholders: replay copies the caller's tensors here
  std::vector<Tensor> outputs;   // the body's results: replay returns copies of them
  std::vector<std::function<void()>> ops;  // in enqueue order; each may throw EngineError
  uint64_t owner = 0;            // the engine that recorded it
  // Touched only on the engine's worker thread:
  int runs = 0;                  // completed runs
  std::shared_ptr<void> captured;  // the backend's captured form (a CUDA graph exec), after run 1
};

}  // namespace latte
