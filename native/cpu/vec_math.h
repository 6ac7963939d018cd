// exp for float written so the compiler can vectorise loops that call it (std::exp cannot be
// vectorised without -ffast-math). Cephes-style: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial
// for e^r, 2^n assembled in the exponent bits. Max error ~2 ulp over the normal range; inputs
// below -87.3 flush to 0 (softmax and silu only feed it non-positive or moderate values).
#pragma once
#include <cstdint>
#include <cstring>

// Hot loops are compiled three times and picked at load time by the CPU (ifunc): AVX-512,
// AVX2+FMA, and the x86-64 baseline the package must still run on.
#define LATTE_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace latte::cpu {

#pragma omp declare simd
inline float vexp(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  const bool under = x < -87.33654f;
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return under ? 0.f : p * scale;
}

#pragma omp declare simd
inline float vsilu(float x) { return x / (1.f + vexp(-x)); }

}  // namespace latte::cpu
