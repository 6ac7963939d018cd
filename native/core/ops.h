// The op layer: every op the engine offers (the rows of core/op_list.h). An op checks its operands
// and attributes and states its output shapes when it is enqueued (so a bad call throws at once,
// with a code), then runs on the stream through the backend contract.
#pragma once
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/op_list.h"

namespace latte {

// Attributes of any op; each op reads the few it documents and ignores the rest.
struct OpAttrs {
  float eps = 1e-6f;             // norms
  float scale = 0.f;             // attention: 0 means 1/sqrt(head_dim)
  float theta = 10000.f;         // rope base
  int mask = 0;                  // attention: Mask
  int64_t prefix_len = 0;        // attention, PrefixCausal
  int64_t image_col0 = -1;       // attention: first image key column; -1 = no image block
  bool return_logits = false;    // attention: also output the image-key logits
  bool bf16 = false;             // attention: bf16 math allowed (precision: 'bf16')
  int sections[4] = {0, 0, 0, 0};
  int n_sections = 0;            // rope: 0 means one section of d/2 (1-D RoPE)
  bool restart = false;          // rope: per-section frequency restart (vision 2-D)
  int stride = 1, padding = 0, groups = 1;  // conv2d
  int factor = 2;                // pixel_shuffle / upsample_nearest
  int gelu = 0;                  // 0 quick, 1 tanh, 2 erf
  bool channels = false;         // rms_norm over dim 1 of NCHW
  DType dtype = DType::F32;      // convert / pack_linear target
  int axis = 0;                  // concat, slice
  int64_t start = 0, length = 0; // slice: rows [start, start + length) of `axis`
  int perm[kMaxDims] = {0, 1, 2, 3, 4, 5};
  int n_perm = 0;                // permute: output dim i is input dim perm[i]
  Shape shape;                   // noise: output shape
  uint64_t seed = 0, offset = 0; // noise: generator seed and first element index; sample: seed, step
  float temperature = 0.f;       // sample: 0 = greedy
  int top_k = 0;                 // sample: 0 = off
  float top_p = 1.f;             // sample: 1 = off
  float alpha = 1.f, beta = 1.f; // axpby: alpha * a + beta * b
  int head_dim = 0;              // relu_linear_attention
};

struct OutDesc {
  DType dtype;
  Shape shape;
  bool packed = false;  // the backend fills Buffer::packed instead of plain memory
};

using Inputs = std::vector<const Tensor*>;  // optional operands are nullptr

enum class Op : int {
#define LATTE_OP_ENUM(id, name, lo, hi, infer, run, flags) id,
  LATTE_OPS(LATTE_OP_ENUM)
#undef LATTE_OP_ENUM
};

// op_list.h's flags
enum OpFlags : unsigned { kPackedOperand1 = 1, kInPlace = 2, kNotRecordable = 4, kRecordableWithOperand1 = 8 };

struct OpDef {
  Op id;
  const char* name;
  int min_inputs, max_inputs;
  std::vector<OutDesc> (*infer)(const Inputs& in, const OpAttrs& a);
  void (*run)(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a);
  unsigned flags;
  int packed_operand() const { return flags & kPackedOperand1 ? 1 : -1; }
  bool in_place() const { return flags & kInPlace; }
  // may these operands (nullptr for an absent optional one) be part of a program?
  bool recordable(const Inputs& in) const {
    if (flags & kNotRecordable) return false;
    return !(flags & kRecordableWithOperand1) || (in.size() > 1 && in[1]);
  }
};

const OpDef& op_def(Op op);
// The N-API boundary's lookup; nullptr for an unknown name.
const OpDef* find_op(const std::string& name);
// Every op's name, in op_list.h order.
std::vector<std::string> op_names();

}  // namespace latte
