#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpu/cpu_kernels.h"

namespace latte::cpu {

// AMX tile data is off by default for a Linux process; ask for it once (arch_prctl
// ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18). oneDNN then picks its AMX kernels.
static bool request_amx() {
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

CpuFeatures detect_features() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = (b >> 5) & 1;
    f.avx512f = (b >> 16) & 1;
    f.avx512_vnni = f.avx512f && ((b >> 30) & 1) && ((c >> 11) & 1);  // with AVX512BW (byte loads, masks)
    f.amx_bf16 = (d >> 22) & 1;
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512_bf16 = (a >> 5) & 1;
  if (f.amx_bf16) {
    static const bool granted = request_amx();
    f.amx_permitted = granted;
  }
  return f;
}

}  // namespace latte::cpu
