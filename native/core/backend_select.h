// Choosing a backend for an engine: 'cpu', 'cuda' (fails with E_BACKEND_UNAVAILABLE when it cannot
// be met) or 'auto' (CUDA when usable, else CPU, with the reason recorded).
#pragma once
#include <memory>
#include <string>

#include "core/backend.h"
#include "latte/engine.h"

namespace latte {

struct CudaProbe {
  bool compiled = false;
  bool usable = false;  // a device is present AND this build has kernels for it
  std::string reason;
  std::string device;
};
CudaProbe cuda_probe();                      // cuda/cuda_probe.cu, or cuda/cuda_absent.cc when not built
std::unique_ptr<Backend> make_cuda_backend();  // only called when cuda_probe().usable

// Provided by the CPU backend (cpu/cpu_info.cc) for backend_info().
CpuFeatures cpu_features();
std::string cpu_gemm_name();

struct Selected {
  std::unique_ptr<Backend> backend;
  std::string name, reason;
};
Selected select_backend(const std::string& request);

}  // namespace latte
