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
#include <unordered_map>
#include <vector>

#include "model/graph.h"
#include "model/qwen2vl_config.h"

namespace latte::model {

// A model's recorded decode steps by sequence id (Program: the engine's opaque recorded op sequence). The model owns them (they hold its weights, so its
// dispose frees those); a sequence's StepHandle erases its own step when the sequence is released.
using StepRegistry = std::unordered_map<uint64_t, std::shared_ptr<Program>>;

class StepHandle {
 public:
  StepHandle() = default;
  StepHandle(const StepHandle&) = delete;
  StepHandle& operator=(const StepHandle&) = delete;
  StepHandle(StepHandle&& o) noexcept : reg_(std::move(o.reg_)), id_(o.id_) { o.reg_.reset(); }
  StepHandle& operator=(StepHandle&& o) noexcept {
    if (this != &o) {
      drop();
      reg_ = std::move(o.reg_);
      id_ = o.id_;
      o.reg_.reset();
    }
    return *this;
  }
  ~StepHandle() { drop(); }
  void bind(const std::shared_ptr<StepRegistry>& reg, uint64_t id) {
    drop();
    reg_ = reg;
    id_ = id;
  }
  std::shared_ptr<StepRegistry> registry() const { return reg_.lock(); }
  uint64_t id() const { return id_; }
  void drop() {
    if (auto r = reg_.lock()) r->erase(id_);
    reg_.reset();
  }

 private:
  std::weak_ptr<StepRegistry> reg_;
  uint64_t id_ = 0;
};

// One conversation's cached keys/values, per decoder layer [1, S, G, d] (capacity 0: each forward
// concatenates its rows), or preallocated [1, capacity, G, d] holding `length` rows (reserve()).
struct KvCache {
  std::vector<Tensor> k, v;
  int64_t length = 0;
  int64_t capacity = 0;
  // reserved caches: the length as the engine sees it (i32 [1]), produced by the last step, so a
  // step that failed leaves it uncomputed and the next one fails too (E_NOT_COMPUTED) instead of
  // running on a row that was never written. (On CUDA a bad token id is found on the device: the
  // step runs on a zero embedding and E_INDEX comes at the next read, as for a growing cache.)
  Tensor len;
  StepHandle step;  // the recorded decode step over these buffers (Qwen2VL::decode)
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
  // Preallocates an empty sequence's keys/values for `capacity` tokens: no copy per token, and
  // decode() then replays one recorded step (a CUDA graph on the GPU) at every length. A forward or
  // decode past the capacity doubles it (copying the rows once, re-recording the step).
  void reserve(KvCache& cache, int64_t capacity);
  // One sampled token id (i32 [1], on the engine) at M-RoPE position `position` (all three axes)
  // -> the logits [1, V]; the token's keys/values join the cache.
  Tensor decode(KvCache& cache, const Tensor& token, int64_t position);
  // false: decode() enqueues its ops one by one (the reference for the recorded step)
  void use_programs(bool on) { use_programs_ = on; }
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
  // the decoder layers over x; past (reserved caches): the cache's length as an engine tensor
  Tensor layer_stack(KvCache& cache, const Tensor& x, const Tensor& positions, int layers, const Tensor* past);
  Tensor head(const Tensor& rows);
  void grow(KvCache& cache, int64_t capacity);
  void make_room(KvCache& cache, int64_t rows);

  Qwen2VLConfig cfg_;
  Graph g_;
  Linear patch_embed_, merger_fc1_, merger_fc2_;
  Tensor merger_norm_w_, merger_norm_b_;
  std::vector<VisionBlock> blocks_;
  Tensor embed_table_, final_norm_;
  std::vector<DecoderLayer> layers_;
  Linear lm_head_;
  bool use_programs_ = true;
  std::shared_ptr<StepRegistry> steps_ = std::make_shared<StepRegistry>();
  uint64_t next_step_ = 1;
};

}  // namespace latte::model
