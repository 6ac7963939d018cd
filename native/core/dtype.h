// Element types the engine stores. Compute is fp32 everywhere; bf16/f16 are storage formats
// (weights, caches) converted on load into registers. I32 carries ids and positions. Q8 is a
// packing format only (core/quant.h: int8 blocks of 32 with a scale each): pack_linear's output
// may carry it, no plain tensor does (upload, load and convert refuse it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/host_device.h"

namespace latte {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, Q8 = 4 };

// Q8's size is nominal (a packed weight has no plain data; its Packed reports its bytes).
inline size_t dtype_size(DType t) { return t == DType::Q8 ? 1 : t == DType::BF16 || t == DType::F16 ? 2 : 4; }
const char* dtype_name(DType t);
bool dtype_from_name(const std::string& s, DType* out);

// Conversions are LATTE_HD: the CUDA kernels call these same functions.
// Round-to-nearest-even, NaN kept quiet: the same rule PyTorch uses for .to(torch.bfloat16).
LATTE_HD inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
LATTE_HD inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// IEEE half conversions with round-to-nearest-even, subnormals and inf/NaN handled.
LATTE_HD inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x007fffffu;
  int32_t exp = int32_t((x >> 23) & 0xff);
  if (exp == 0xff) return uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0u));
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return uint16_t(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return uint16_t(sign);
    mant |= 0x00800000u;
    uint32_t shift = uint32_t(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | (uint32_t(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
  return uint16_t(half);
}

LATTE_HD inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t out;
  if (exp == 0) {
    if (mant == 0) {
      out = sign;
    } else {
      int e = -1;
      do { e++; mant <<= 1; } while (!(mant & 0x400u));
      out = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    out = sign | 0x7f800000u | (mant << 13);
  } else {
    out = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &out, 4);
  return f;
}

}  // namespace latte
