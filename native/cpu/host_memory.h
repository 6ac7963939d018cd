// Host memory for weights and activations. Large blocks are 2 MiB aligned and advised as huge
// pages: streaming a decode step's weights with 4 KiB pages measured ~20% slower (TLB misses) on
// this project's VMs, where transparent huge pages are "madvise" only.
#pragma once
#include <cstddef>
#include <new>

namespace latte::cpu {

void* host_alloc(size_t bytes);  // nullptr when out of memory
void host_free(void* p);

// std::vector allocator over host_alloc (packed weights kept beside oneDNN's).
template <class T>
struct HostAllocator {
  using value_type = T;
  HostAllocator() = default;
  template <class U>
  HostAllocator(const HostAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = host_alloc(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { host_free(p); }
  template <class U>
  bool operator==(const HostAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const HostAllocator<U>&) const { return false; }
};

}  // namespace latte::cpu
