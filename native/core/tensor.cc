#include "core/tensor.h"

#include "core/backend.h"

namespace latte {

Shape::Shape(std::initializer_list<int64_t> dims) {
  check(dims.size() <= size_t(kMaxDims), code::kShape, "too many dimensions");
  for (int64_t v : dims) d[ndim++] = v;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= d[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; i++)
    if (d[i] != o.d[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; i++) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

std::string Tensor::desc() const { return std::string(dtype_name(dtype)) + shape.str(); }

Buffer::~Buffer() {
  if (auto p = pool.lock()) p->release(*this);
}

void MemoryPool::allocate(Buffer& b, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  check(!disposed_, code::kDisposed, "engine is disposed");
  void* p = bytes ? be_->alloc(bytes) : nullptr;
  check(p != nullptr || bytes == 0, code::kOom, "out of memory allocating " + std::to_string(bytes) + " bytes");
  b.data = p;
  b.bytes = bytes;
  b.pool = weak_from_this();
  live_.insert(&b);
  int64_t now = in_use_ += int64_t(bytes);
  if (now > peak_) peak_ = now;
}

void MemoryPool::release(Buffer& b) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!live_.erase(&b)) return;
  if (b.data) be_->free(b.data, b.bytes);
  in_use_ -= int64_t(b.bytes);
  if (b.packed) in_use_ -= int64_t(b.packed->bytes());
  b.data = nullptr;
  b.packed.reset();
}

void MemoryPool::release_all() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Buffer* b : live_) {
    if (b->data) be_->free(b->data, b->bytes);
    b->data = nullptr;
    b->packed.reset();
  }
  live_.clear();
  in_use_ = 0;
  disposed_ = true;
}

}  // namespace latte
