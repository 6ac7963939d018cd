// Probing the CUDA runtime (linked statically, so this loads on hosts with no driver and reports why).
#include <cuda_runtime.h>

#include <string>

#include "core/backend_select.h"

namespace latte {

CudaProbe cuda_probe() {
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
  cudaGetDeviceProperties(&prop, 0);
  p.device = std::string(prop.name) + " (sm_" + std::to_string(prop.major * 10 + prop.minor) + ")";
  // The op kernels for CUDA are built in a later stage (native/cuda/ ops); until they exist a
  // present device is reported but not selected, so 'auto' stays on the CPU with this reason.
  p.reason = "device " + p.device + " found, but this build has no CUDA op kernels yet";
  return p;
}

std::unique_ptr<Backend> make_cuda_backend() { fail(code::kBackend, "this build has no CUDA op kernels yet"); }

}  // namespace latte
