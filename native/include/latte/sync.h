// Blocking conveniences over the engine's asynchronous API, for C++ callers that have no event
// loop (native tests, benchmarks). They wait on the stream; engine errors are rethrown.
#pragma once
#include <cstring>
#include <future>
#include <vector>

#include "latte/engine.h"

namespace latte::sync {

inline void fence(Engine& e) {
  std::promise<void> p;
  auto f = p.get_future();
  e.fence([&p](std::exception_ptr err) {
    if (err) p.set_exception(err);
    else p.set_value();
  });
  f.get();
}

inline std::vector<float> read_f32(Engine& e, const Tensor& t) {
  std::promise<std::vector<uint8_t>> p;
  auto f = p.get_future();
  e.read(t, [&p](std::vector<uint8_t>&& bytes, std::exception_ptr err) {
    if (err) p.set_exception(err);
    else p.set_value(std::move(bytes));
  });
  std::vector<uint8_t> bytes = f.get();
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

// Drains the queue, frees the engine's memory and stops its worker.
inline void dispose(Engine& e) {
  std::promise<void> p;
  auto f = p.get_future();
  e.dispose(false, [&p](std::exception_ptr) { p.set_value(); });
  f.get();
  e.join();
}

}  // namespace latte::sync
