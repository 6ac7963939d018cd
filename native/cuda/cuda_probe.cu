// Probing the CUDA runtime (linked statically, so this loads on hosts with no driver and reports why).
// CUDA is usable when device 0 has compute capability >= 8.0 (bf16 mma.sync) AND this binary holds
// machine code it can run (a build for 90-real cannot run on an sm_80 card: the probe says so).
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "core/backend.h"
#include "core/backend_info.h"

#ifndef LATTE_CUDA_ARCHS
#define LATTE_CUDA_ARCHS "unknown"
#endif

namespace latte {
namespace {

__global__ void probe_kernel(int* p) {
  if (p) *p = 1;
}

CudaProbe probe_once() {
  CudaProbe p;
  p.compiled = true;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    p.reason = std::string("no usable CUDA device: ") + cudaGetErrorName(e) + " (" + std::to_string(int(e)) + ")";
    cudaGetLastError();
    return p;
  }
  if (n == 0) {
    p.reason = "no CUDA device";
    return p;
  }
  cudaDeviceProp prop{};
  if ((e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
    p.reason = std::string("cannot query CUDA device 0: ") + cudaGetErrorName(e);
    cudaGetLastError();
    return p;
  }
  const int cc = prop.major * 10 + prop.minor;
  p.device = std::string(prop.name) + " (sm_" + std::to_string(cc) + ", " +
             std::to_string((prop.totalGlobalMem + (size_t(1) << 29)) >> 30) + " GiB)";
  if (cc < 80) {
    p.reason = "device " + p.device + " is older than sm_80 (the kernels need bf16 tensor cores)";
    return p;
  }
  // Loading a kernel creates the context and finds out whether the binary runs on this device.
  cudaFuncAttributes attr{};
  if ((e = cudaFuncGetAttributes(&attr, probe_kernel)) != cudaSuccess) {
    p.reason = "device " + p.device + " cannot run this build's kernels (built for " LATTE_CUDA_ARCHS "): " + cudaGetErrorName(e);
    cudaGetLastError();
    return p;
  }
  p.usable = true;
  p.reason = "device " + p.device + " (kernels built for " LATTE_CUDA_ARCHS ")";
  return p;
}

}  // namespace

// The device cannot change under a running process: probe once.
CudaProbe cuda_probe() {
  static std::once_flag once;
  static CudaProbe cached;
  std::call_once(once, [] { cached = probe_once(); });
  return cached;
}

}  // namespace latte
