#include "runtime/backend_select.h"

#include "latte/engine.h"

#include <cstdlib>
#include <thread>

namespace latte {

Selected select_backend(const std::string& request_in) {
  std::string request = request_in;
  // LATTE_BACKEND overrides an 'auto' request (e.g. force the CPU in a service on a GPU host).
  if (request == "auto")
    if (const char* env = std::getenv("LATTE_BACKEND"); env && *env) request = env;
  if (request != "auto" && request != "cpu" && request != "cuda")
    fail(code::kArg, "backend must be 'auto', 'cpu' or 'cuda', got '" + request + "'");
  Selected s;
  if (request == "cpu") {
    s.backend = make_cpu_backend();
    s.name = "cpu";
    s.reason = "requested";
    return s;
  }
  CudaProbe p = cuda_probe();
  if (p.usable) {
    s.backend = make_cuda_backend();
    s.name = "cuda";
    s.reason = request == "cuda" ? "requested" : "auto: " + p.device;
    return s;
  }
  if (request == "cuda") fail(code::kBackend, "backend 'cuda' unavailable: " + p.reason);
  s.backend = make_cpu_backend();
  s.name = "cpu";
  s.reason = "auto: CUDA not usable (" + p.reason + ")";
  return s;
}

BackendInfo backend_info() {
  BackendInfo info;
  info.compiled.push_back("cpu");
  CudaProbe p = cuda_probe();
  if (p.compiled) info.compiled.push_back("cuda");
  info.cuda_compiled = p.compiled;
  info.cuda_available = p.usable;
  info.cuda_reason = p.reason;
  info.cuda_device = p.device;
  info.cpu = cpu_features();
  info.cpu_gemm = cpu_gemm_name();
  unsigned hw = std::thread::hardware_concurrency();
  info.cores = int(hw ? hw : 1);
  return info;
}

}  // namespace latte
