// Tensor = dtype + shape (PyTorch order, row-major, contiguous) + a shared buffer.
// A Buffer is created empty when an op is enqueued and gets its memory on the stream when the op
// runs, so enqueueing never touches device memory. Views (reshape) share the Buffer.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "core/dtype.h"
#include "core/error.h"

namespace latte {

constexpr int kMaxDims = 6;

struct Shape {
  int ndim = 0;
  int64_t d[kMaxDims] = {0};
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  int64_t operator[](int i) const { return d[i < 0 ? ndim + i : i]; }
  int64_t& operator[](int i) { return d[i < 0 ? ndim + i : i]; }
  int64_t numel() const;
  int64_t rows() const { return ndim ? numel() / d[ndim - 1] : 1; }  // product of all but the last dim
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;
};

// Backend-specific form of a weight (e.g. oneDNN's reordered matmul weights). Opaque to the core.
struct Packed {
  virtual ~Packed() = default;
  virtual size_t bytes() const = 0;
};

class MemoryPool;

struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<Packed> packed;  // set by pack ops; data may then be empty
  std::weak_ptr<MemoryPool> pool;
  std::atomic<bool> ready{false};  // set once the op producing it has run (read by model code to reuse a cached upload)
  bool is_packed = false;       // known at enqueue: the producing op packs (no plain data)
  uint64_t owner = 0;           // id of the engine that created it (ids are never reused)
  ~Buffer();
};

struct Tensor {
  DType dtype = DType::F32;
  Shape shape;
  std::shared_ptr<Buffer> buf;

  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  template <class T> T* ptr() const { return static_cast<T*>(buf->data); }
  float* f32() const { return ptr<float>(); }
  std::string desc() const;  // "f32[2,3]" for messages
};

// Owns every live buffer of one engine: allocation goes through the backend, the byte count is
// what stats() reports, and release_all() frees everything when the engine is disposed.
class Backend;
class MemoryPool : public std::enable_shared_from_this<MemoryPool> {
 public:
  explicit MemoryPool(Backend* be) : be_(be) {}
  void allocate(Buffer& b, size_t bytes);  // throws E_OOM / E_DISPOSED
  void release(Buffer& b);
  void account_packed(int64_t delta) { in_use_ += delta; }
  void release_all();
  int64_t bytes_in_use() const { return in_use_.load(); }
  int64_t peak_bytes() const { return peak_.load(); }
  bool disposed() const { return disposed_; }

 private:
  Backend* be_;
  std::mutex mu_;
  std::unordered_set<Buffer*> live_;
  std::atomic<int64_t> in_use_{0}, peak_{0};
  bool disposed_ = false;
};

}  // namespace latte
