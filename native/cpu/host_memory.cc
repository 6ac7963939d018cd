#include "cpu/host_memory.h"

#include <sys/mman.h>

#include <cstdlib>

namespace latte::cpu {

namespace {
constexpr size_t kHuge = size_t(2) << 20;
constexpr size_t kHugeFrom = size_t(4) << 20;  // smaller blocks: 64-byte alignment is enough
}  // namespace

void* host_alloc(size_t bytes) {
  if (bytes < kHugeFrom) return std::aligned_alloc(64, (bytes + 63) & ~size_t(63));
  const size_t rounded = (bytes + kHuge - 1) & ~(kHuge - 1);
  void* p = std::aligned_alloc(kHuge, rounded);
  if (p) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure leaves ordinary pages
  return p;
}

void host_free(void* p) { std::free(p); }

}  // namespace latte::cpu
