// Binds model weights by their checkpoint names: every tensor is looked up (with the aliases of
// other saving conventions), checked against the shape the config implies, and loaded onto the
// engine in the model's storage dtype; linear weights are packed once for the backend's GEMM.
// A missing or mis-shaped tensor is an E_BAD_WEIGHTS error naming it, raised before any work runs.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "latte/engine.h"

namespace latte::io {
class Checkpoint;
}

namespace latte::model {

struct Linear {
  Tensor w;  // packed [out, in]
  Tensor b;  // [out] f32, or empty
  bool has_bias() const { return bool(b.buf); }
};

class WeightBinder;

// A Qwen2 decoder layer's weights (the VLM's layers and the generation stream's copies of them):
// prefix + input_layernorm, post_attention_layernorm, self_attn.{q,k,v}_proj (with bias), o_proj,
// mlp.{gate,up,down}_proj.
struct DecoderWeights {
  Tensor input_norm, post_norm;
  Linear q, k, v, o, gate, up, down;
  static DecoderWeights bind(WeightBinder& wb, const std::string& prefix, int64_t D, int64_t H, int64_t G, int64_t d, int64_t F);
};

class WeightBinder {
 public:
  // aliases: (prefix as the model names it, prefix another convention writes) pairs
  WeightBinder(Engine& e, std::shared_ptr<io::Checkpoint> ck, DType storage, std::vector<std::pair<std::string, std::string>> aliases = {});

  Tensor small(const std::string& name, const Shape& shape);  // norms and biases: read as f32
  Tensor big(const std::string& name, const Shape& shape);    // tables: the storage dtype (bf16 for q8)
  Linear linear(const std::string& prefix, int64_t out, int64_t in, bool bias);
  Linear pack(const Tensor& w, const Tensor* b);  // an already-loaded [out, in] weight
  bool has(const std::string& name) const;
  DType storage() const { return storage_; }
  DType table_dtype() const;

 private:
  std::string resolve(const std::string& name) const;
  Tensor load(const std::string& name, const Shape& shape, DType as);
  Engine& e_;
  std::shared_ptr<io::Checkpoint> ck_;
  DType storage_;
  std::vector<std::pair<std::string, std::string>> aliases_;
};

}  // namespace latte::model
