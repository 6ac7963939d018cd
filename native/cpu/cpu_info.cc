// What the CPU backend reports about this machine (for backend_info / `latte-flow inspect`).
#include "core/backend_info.h"
#include "cpu/cpu_kernels.h"

namespace latte {

CpuFeatures cpu_features() { return cpu::detect_features(); }
std::string cpu_gemm_name() { return cpu::onednn_version(); }

}  // namespace latte
