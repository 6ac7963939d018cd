// Element types the engine stores. Compute is fp32 everywhere; bf16/f16 are storage formats
// (weights, caches) converted on load into registers. I32 carries ids and positions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace latte {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };

inline size_t dtype_size(DType t) { return t == DType::BF16 || t == DType::F16 ? 2 : 4; }
const char* dtype_name(DType t);
bool dtype_from_name(const std::string& s, DType* out);

// Round-to-nearest-even, NaN kept quiet: the same rule PyTorch uses for .to(torch.bfloat16).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

}  // namespace latte
