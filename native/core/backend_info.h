// What a backend is and reports, below every layer that picks one: the CPU's features, the backends a
// binary carries, and the factories each backend directory (cpu/, cuda/) defines. The policy that
// chooses between them (requests, LATTE_BACKEND) is the runtime's (runtime/backend_select.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace latte {

class Backend;

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512_bf16 = false, amx_bf16 = false;
  bool f16c = false, avx512_vnni = false;  // q8 weights: scale conversion, int8 dot products
  bool amx_permitted = false;  // the kernel granted AMX tile state to this process
};

struct BackendInfo {
  std::vector<std::string> compiled;  // backends built into this binary
  bool cuda_compiled = false;
  bool cuda_available = false;
  std::string cuda_reason;  // why CUDA is or is not usable
  std::string cuda_device;
  CpuFeatures cpu;
  std::string cpu_gemm;  // the GEMM library and its version
  int cores = 0;
};

struct CudaProbe {
  bool compiled = false;
  bool usable = false;  // a device is present AND this build has kernels for it
  std::string reason;
  std::string device;
};

// cpu/: the backend, and what it reports about this machine
std::unique_ptr<Backend> make_cpu_backend();
CpuFeatures cpu_features();
std::string cpu_gemm_name();
// cuda/cuda_probe.cu and cuda_backend.cu, or cuda/cuda_absent.cc when not built
CudaProbe cuda_probe();
std::unique_ptr<Backend> make_cuda_backend();  // only called when cuda_probe().usable

}  // namespace latte
