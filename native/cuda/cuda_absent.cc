// Linked instead of the CUDA backend when the build has no CUDA (LATTE_CUDA=OFF or no nvcc).
#include "core/backend.h"
#include "core/backend_info.h"

namespace latte {

CudaProbe cuda_probe() {
  CudaProbe p;
  p.reason = "this binary was built without CUDA";
  return p;
}

std::unique_ptr<Backend> make_cuda_backend() { fail(code::kBackend, "this binary was built without CUDA"); }

}  // namespace latte
