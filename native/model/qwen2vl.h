// Qwen2-VL for understanding: the vision tower and merger, the M-RoPE decoder with a KV cache and
// the (tied or separate) LM head, as tensor algebra over the engine's ops. Weights are bound by
// their Hugging Face checkpoint names when the model is built (every name and shape checked
// first); each method only enqueues work and returns engine tensors.
//
// Shapes (PyTorch order): pixel values [N, C*T*P*P] in the processor's patch order (2x2 merge
// windows contiguous); image embeddings [N / merge^2, D]; hidden [1, S, D]; M-RoPE positions
// i32 [3, 1, S]; logits [rows, V].
#pragma once
#include <memory>
#include <vector>

#include "model/graph.h"
#include "model/qwen2vl_config.h"

namespace latte::model {

// One conversation's cached keys/values, per decoder layer [1, S, G, d].
struct KvCache {
  std::vector<Tensor> k, v;
  int64_t length = 0;
};

class Qwen2VL {
 public:
  // storage: F32 or BF16 (weights converted on load; activations and accumulation stay f32)
  Qwen2VL(Engine& e, std::shared_ptr<io::Checkpoint> ck, const Qwen2VLConfig& cfg, DType storage);
  const Qwen2VLConfig& config() const { return cfg_; }

  // One image of grid (1, h, w) patches -> its merged embeddings [h*w / merge^2, D].
  Tensor encode_image(const Tensor& pixels, int64_t t, int64_t h, int64_t w);
  // Token ids with the image embeddings spliced in at the runs of image tokens, in order -> [1, S, D].
  Tensor embed_prompt(const std::vector<int32_t>& ids, const std::vector<Tensor>& images);
  // A token id tensor i32 [1] (e.g. the last sampled one) -> [1, 1, D].
  Tensor embed_token(const Tensor& id);
  // Runs the decoder over x [1, S, D] at positions [3, 1, S] after the cached tokens, appends
  // their keys/values to the cache and returns the logits of the last row [1, V] (all rows
  // [S, V] with all_rows).
  Tensor forward(KvCache& cache, const Tensor& x, const Tensor& positions, bool all_rows = false);
  // A prompt's per-layer keys/values only (what the generation stream attends to): the first
  // `layers` decoder layers over x, no LM head. The returned hidden state is a completion token.
  Tensor encode_prompt(KvCache& cache, const Tensor& x, const Tensor& positions, int layers);

 private:
  struct VisionBlock {
    Tensor norm1_w, norm1_b, norm2_w, norm2_b;
    Linear qkv, proj, fc1, fc2;
  };
  using DecoderLayer = DecoderWeights;
  Tensor vision_positions(int64_t h, int64_t w);
  Tensor run_layers(KvCache& cache, const Tensor& x, const Tensor& positions, int layers);

  Qwen2VLConfig cfg_;
  Graph g_;
  Linear patch_embed_, merger_fc1_, merger_fc2_;
  Tensor merger_norm_w_, merger_norm_b_;
  std::vector<VisionBlock> blocks_;
  Tensor embed_table_, final_norm_;
  std::vector<DecoderLayer> layers_;
  Linear lm_head_;
};

}  // namespace latte::model
