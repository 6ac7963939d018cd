// 8-bit weights ('q8'): the quantisation rule, written once for the CPU packer, the CUDA packer and
// the tests' reference. A weight row [k] is cut into blocks of 32 along k (the last block padded with
// zeros); each block keeps one scale d = f16(max|w| / 127) and 32 int8 q = round(w / d) in
// [-127, 127] (symmetric, round half away from zero, as llama.cpp's Q8_0). The weight the model then
// uses is exactly q * d: every backend computes with those values. 34 bytes per 32 weights, 1.0625
// bytes a weight against bf16's 2.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace latte {

constexpr int kQ8Block = 32;

// Quantises w[0..n) (n <= 32; the rest of the block counts as zeros) into q[0..32); returns the
// scale as f16 bits. The scale is rounded to f16 first and q divides by the rounded scale, so q * d
// is the nearest grid point of the grid the kernels actually use.
LATTE_HD inline uint16_t q8_quantise_block(const float* w, int n, int8_t* q) {
  float amax = 0.f;
  for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(w[i]));
  const uint16_t d16 = f32_to_f16(amax / 127.f);
  const float d = f16_to_f32(d16);
  const float inv = d > 0.f ? 1.f / d : 0.f;
  for (int i = 0; i < kQ8Block; i++) {
    const float v = i < n ? roundf(w[i] * inv) : 0.f;
    q[i] = int8_t(fminf(127.f, fmaxf(-127.f, v)));
  }
  return d16;
}

}  // namespace latte
