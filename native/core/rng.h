// The project's counter-based random numbers (docs/reference.md#noise), identical on every backend
// and in the PyTorch reference: element i of a noise tensor depends only on (seed, i), so any
// backend fills any slice in parallel and CPU and GPU runs start from the same latent.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/host_device.h"  // cuda/layout.cu fills noise on the GPU with these same functions

namespace latte::rng {

LATTE_HD constexpr uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static_assert(splitmix64(0) == 0xE220A8397B1DCDAFull, "splitmix64 reference value");

constexpr double kInv2p53 = 1.0 / 9007199254740992.0;

LATTE_HD inline uint64_t key(uint64_t seed) { return splitmix64(seed); }
LATTE_HD inline double uniform(uint64_t k, uint64_t i) { return double(splitmix64(k + i) >> 11) * kInv2p53; }  // [0, 1)

// normal(i) = float32(sqrt(-2 ln(u1 + 2^-53)) cos(2 pi u2)) in float64, u1 = bits(2i), u2 = bits(2i+1).
// ::sqrt/::log/::cos are the C library's double functions on the host (what std:: names there too)
// and CUDA's on the device: sqrt is exact on both; log and cos differ by at most an ulp of a double,
// so the float result is the same except, very rarely, by one float ulp.
LATTE_HD inline float normal(uint64_t k, uint64_t i) {
  const double u1 = uniform(k, 2 * i) + kInv2p53;
  const double u2 = uniform(k, 2 * i + 1);
  return float(::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2));
}

}  // namespace latte::rng
