// A bump allocator for per-op scratch memory (score rows, converted operands). One arena per
// stream thread: kernels take what they need, and the stream resets it after every op, so scratch
// costs no malloc/free on the hot path once the arena has grown to the largest op's need.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/error.h"

namespace latte {

class Arena {
 public:
  static constexpr size_t kAlign = 64;
  ~Arena() { release(); }

  void* take(size_t bytes) {
    bytes = (bytes + kAlign - 1) & ~(kAlign - 1);
    if (blocks_.empty() || used_ + bytes > blocks_.back().size) grow(bytes);
    void* p = static_cast<char*>(blocks_.back().ptr) + used_;
    used_ += bytes;
    return p;
  }
  template <class T> T* take_n(size_t n) { return static_cast<T*>(take(n * sizeof(T))); }

  // Keeps the largest block so steady-state ops reuse it; frees the rest.
  void reset() {
    if (blocks_.size() > 1) {
      size_t total = 0;
      for (auto& b : blocks_) total += b.size;
      release();
      grow(total);
    }
    used_ = 0;
  }
  size_t capacity() const {
    size_t total = 0;
    for (auto& b : blocks_) total += b.size;
    return total;
  }

 private:
  struct Block {
    void* ptr;
    size_t size;
  };
  void grow(size_t need) {
    size_t size = std::max(need, blocks_.empty() ? size_t(1) << 20 : blocks_.back().size * 2);
    void* p = std::aligned_alloc(kAlign, (size + kAlign - 1) & ~(kAlign - 1));
    check(p != nullptr, code::kOom, "scratch arena: out of memory");
    blocks_.push_back({p, size});
    used_ = 0;
  }
  void release() {
    for (auto& b : blocks_) std::free(b.ptr);
    blocks_.clear();
    used_ = 0;
  }
  std::vector<Block> blocks_;
  size_t used_ = 0;
};

// Resets an arena when a kernel ends, by return or by throw.
struct ArenaReset {
  Arena& arena;
  ~ArenaReset() { arena.reset(); }
};

}  // namespace latte
