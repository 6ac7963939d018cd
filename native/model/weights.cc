#include "model/weights.h"

#include "io/safetensors.h"

namespace latte::model {

WeightBinder::WeightBinder(Engine& e, std::shared_ptr<io::Checkpoint> ck, DType storage, std::vector<std::pair<std::string, std::string>> aliases)
    : e_(e), ck_(std::move(ck)), storage_(storage), aliases_(std::move(aliases)) {
  if (storage_ != DType::F32 && storage_ != DType::BF16 && storage_ != DType::Q8) fail(code::kDType, "weights can be stored as f32, bf16 or q8");
}

std::string WeightBinder::resolve(const std::string& name) const {
  if (ck_->has(name)) return name;
  for (auto& [ours, theirs] : aliases_)
    if (name.compare(0, ours.size(), ours) == 0) {
      std::string alt = theirs + name.substr(ours.size());
      if (ck_->has(alt)) return alt;
    }
  fail(code::kBadWeights, "the checkpoint has no tensor '" + name + "' (the config requires it)");
}

bool WeightBinder::has(const std::string& name) const {
  try {
    resolve(name);
    return true;
  } catch (const EngineError&) {
    return false;
  }
}

Tensor WeightBinder::load(const std::string& name, const Shape& shape, DType as) {
  std::string real = resolve(name);
  const io::TensorEntry& entry = ck_->get(real);
  if (entry.shape != shape)
    fail(code::kBadWeights, "tensor '" + real + "' has shape " + entry.shape.str() + " but the config needs " + shape.str());
  if (entry.dtype != io::StDType::F32 && entry.dtype != io::StDType::BF16 && entry.dtype != io::StDType::F16 && entry.dtype != io::StDType::F64)
    fail(code::kBadWeights, "tensor '" + real + "' is " + entry.dtype_name + "; weights must be a float type");
  return e_.load(ck_, real, &as);
}

// Norm weights and biases are stored like every other weight (so a bf16 model is the bf16-rounded
// model throughout) but kernels read them as f32: they are tiny, so convert once. q8 quantises the
// linear layers only: norms and biases stay f32, tables (embeddings) are bf16.
Tensor WeightBinder::small(const std::string& name, const Shape& shape) {
  if (storage_ != DType::BF16) return load(name, shape, DType::F32);
  Tensor t = load(name, shape, storage_);
  OpAttrs a;
  a.dtype = DType::F32;
  return e_.enqueue(Op::Convert, {&t}, a)[0];
}
Tensor WeightBinder::big(const std::string& name, const Shape& shape) { return load(name, shape, table_dtype()); }
DType WeightBinder::table_dtype() const { return storage_ == DType::Q8 ? DType::BF16 : storage_; }

Linear WeightBinder::pack(const Tensor& w, const Tensor* b) {
  OpAttrs a;
  a.dtype = storage_;
  Linear l;
  l.w = e_.enqueue(Op::PackLinear, {&w}, a)[0];
  if (b) l.b = *b;
  return l;
}

Linear WeightBinder::linear(const std::string& prefix, int64_t out, int64_t in, bool bias) {
  // q8 quantises the checkpoint's own values (f32 here); the f32 copy goes once packed
  Tensor w = load(prefix + ".weight", Shape{out, in}, storage_ == DType::Q8 ? DType::F32 : storage_);
  Tensor b;
  if (bias) b = small(prefix + ".bias", Shape{out});
  return pack(w, bias ? &b : nullptr);
}

DecoderWeights DecoderWeights::bind(WeightBinder& wb, const std::string& p, int64_t D, int64_t H, int64_t G, int64_t d, int64_t F) {
  DecoderWeights L;
  L.input_norm = wb.small(p + "input_layernorm.weight", Shape{D});
  L.post_norm = wb.small(p + "post_attention_layernorm.weight", Shape{D});
  L.q = wb.linear(p + "self_attn.q_proj", H * d, D, true);
  L.k = wb.linear(p + "self_attn.k_proj", G * d, D, true);
  L.v = wb.linear(p + "self_attn.v_proj", G * d, D, true);
  L.o = wb.linear(p + "self_attn.o_proj", D, H * d, false);
  L.gate = wb.linear(p + "mlp.gate_proj", F, D, false);
  L.up = wb.linear(p + "mlp.up_proj", F, D, false);
  L.down = wb.linear(p + "mlp.down_proj", D, F, false);
  return L;
}

}  // namespace latte::model
