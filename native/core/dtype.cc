#include "core/dtype.h"

namespace latte {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I32: return "i32";
    case DType::Q8: return "q8";
  }
  return "?";
}

bool dtype_from_name(const std::string& s, DType* out) {
  if (s == "f32" || s == "float32") *out = DType::F32;
  else if (s == "bf16" || s == "bfloat16") *out = DType::BF16;
  else if (s == "f16" || s == "float16") *out = DType::F16;
  else if (s == "i32" || s == "int32") *out = DType::I32;
  else if (s == "q8") *out = DType::Q8;
  else return false;
  return true;
}

}  // namespace latte
