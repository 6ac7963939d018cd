// The CPU backend: host memory, OpenMP threads, oneDNN for GEMM and convolution.
#include <omp.h>
#include <xmmintrin.h>
#include <pmmintrin.h>

#include <cstring>

#include "core/backend_info.h"
#include "cpu/cpu_kernels.h"
#include "cpu/host_memory.h"

namespace latte {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend() { ctx_.features = cpu::detect_features(); }
  const char* name() const override { return "cpu"; }
  void* alloc(size_t bytes) override { return cpu::host_alloc(bytes); }
  void free(void* p, size_t) override { cpu::host_free(p); }
  void upload(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void download(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void copy(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void synchronize() override {}

  // Denormals: chains of matmuls drifting into subnormals run many times slower; flush them on
  // the stream thread and every OpenMP thread of its team.
  void bind_thread(int threads) override {
    omp_set_num_threads(threads);
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#pragma omp parallel
    {
      _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
      _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    }
  }

  // every kernel of core/kernel_list.h: cpu::name(ctx_, args...)
#define LATTE_BACKEND_NS cpu
  LATTE_KERNELS(LATTE_FORWARD_TO_KERNEL)
#undef LATTE_BACKEND_NS

 private:
  cpu::Context ctx_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace latte
