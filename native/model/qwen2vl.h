// Qwen2-VL for understanding: the vision tower and merger, the M-RoPE decoder with a KV cache and
// the (tied or separate) LM head, as tensor algebra over the engine's ops. Weights are bound by
// their Hugging Face checkpoint names when the model is built (every name and shape checked
// first); each method only enqueues work and returns engine tensors.
//
// Shapes (PyTorch order): pixel values [N, C*T*P*P] in the processor's patch order, which the
// caller owns and states as each row's grid (row, col) (lib/image.ts patchOrder; the merger relies
// on each merge window's patches being contiguous rows); image embeddings [N / merge^2, D]; hidden
// [1, S, D]; M-RoPE positions [3, S] (t, h, w rows) given on the host; logits [rows, V].
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

// How a sequence draws its tokens (core/sampling.h): temperature 0 is greedy; top_k 0 and top_p 1 are off.
struct Sampling {
  float temperature = 0.f;
  int top_k = 0;
  float top_p = 1.f;
  uint64_t seed = 0;
};

// One conversation: its cached keys/values, per decoder layer [1, S, G, d] (capacity 0: each forward
// concatenates its rows), or preallocated [1, capacity, G, d] holding `length` rows (reserve()); where
// its next token sits; how it draws tokens and how many it has drawn.
struct KvCache {
  std::vector<Tensor> k, v;
  // The rows cached. A reserved cache also holds the same count on the engine (`len`, i32 [1]): the
  // recorded step reads and advances it there, so a step that failed leaves it uncomputed and the next
  // one fails too (E_NOT_COMPUTED) instead of running on a row that was never written. Both start at
  // 0 (reserve()) and change only together, in added(). (On CUDA a bad token id is found on the
  // device: the step runs on a zero embedding and E_INDEX comes at the next read, as for a growing cache.)
  int64_t length = 0;
  Tensor len;
  int64_t capacity = 0;
  // M-RoPE: the prefill's largest position + 1, less the length after it (image tokens share
  // positions), so the token at row i, from the prefill's end on, is at i + rope_delta on all three axes
  int64_t rope_delta = 0;
  Sampling sampling;  // set before the prefill: a recorded step keeps the settings it drew with
  Tensor draws;       // i32 [1] on the engine: the tokens drawn so far, i.e. the next draw's step
  StepHandle step;    // the recorded decode step over these buffers (Qwen2VL::decode)

  int64_t next_position() const { return length + rope_delta; }
  // `rows` more cached; `advanced` is `len` + rows on the engine (reserved caches), computed once they are written
  void added(int64_t rows, const Tensor& advanced) {
    length += rows;
    if (capacity) len = advanced;
  }
  // per-layer keys/values [1, P, G, d] computed elsewhere (a reference fixture, a benchmark's prompt)
  static KvCache assigned(std::vector<Tensor> k, std::vector<Tensor> v);
};

class Qwen2VL {
 public:
  // storage: F32, BF16 or Q8 (weights converted on load; activations and accumulation stay f32;
  // Q8 quantises the linear layers, core/quant.h)
  Qwen2VL(Engine& e, std::shared_ptr<io::Checkpoint> ck, const Qwen2VLConfig& cfg, DType storage);
  const Qwen2VLConfig& config() const { return cfg_; }

  // One image of grid (1, h, w) patches, row r being patch (rows[r], cols[r]) of the grid
  // (patch_positions: the h*w rows, then the h*w cols) -> its merged embeddings [h*w / merge^2, D].
  Tensor encode_image(const Tensor& pixels, int64_t t, int64_t h, int64_t w, const std::vector<int32_t>& patch_positions);
  // Preallocates an empty sequence's keys/values for `capacity` tokens: no copy per token, and
  // decode() then replays one recorded step (a CUDA graph on the GPU) at every length. A forward or
  // decode past the capacity doubles it (copying the rows once, re-recording the step).
  void reserve(KvCache& cache, int64_t capacity);
  // How the sequence's tokens are drawn (sample(), decode()); only before its prefill.
  void set_sampling(KvCache& cache, const Sampling& s);
  // Token ids (the image embeddings spliced in at the runs of image tokens, in order) at M-RoPE
  // positions [3, S] through the decoder after the cached tokens: their keys/values join the cache,
  // the sequence records where its next token sits, and the logits of the last row [1, V] come back
  // (all rows [S, V] with all_rows).
  Tensor prefill(KvCache& cache, const std::vector<int32_t>& ids, const std::vector<Tensor>& images, const std::vector<int32_t>& positions,
                 bool all_rows = false);
  // The sequence's next token id (i32 [1]) drawn from logits [1, V] (the prefill's).
  Tensor sample(KvCache& cache, const Tensor& logits);
  // One token id (i32 [1], on the engine) at the sequence's next position -> the next token id drawn
  // from its logits (both returned); the token's keys/values join the cache. On a reserved sequence
  // this is one replay of the recorded step, the draw included.
  struct Decoded {
    Tensor token, logits;
  };
  Decoded decode(KvCache& cache, const Tensor& token);
  // One decode step for several reserved sequences at once (continuous batching): tokens i32 [M],
  // one per sequence -> the next token of each, i32 [M]. The linear layers and the head see all M
  // rows; attention, the cache writes and the draw stay per sequence (each its own length, position
  // and sampling). Each sequence's tokens equal decode()'s up to float rounding (greedy: the same
  // tokens but for near ties). Not recorded: the set of sequences changes from step to step.
  Tensor decode_batch(const std::vector<KvCache*>& caches, const Tensor& tokens);
  // false: decode() enqueues its ops one by one (the reference for the recorded step)
  void use_programs(bool on) { use_programs_ = on; }
  // A prompt's per-layer keys/values only (what the generation stream attends to): the first
  // `layers` decoder layers over the text ids at positions [3, S], no LM head. The returned hidden
  // state is a completion token.
  Tensor encode_prompt(KvCache& cache, const std::vector<int32_t>& ids, const std::vector<int32_t>& positions, int layers);

 private:
  struct VisionBlock {
    Tensor norm1_w, norm1_b, norm2_w, norm2_b;
    Linear qkv, proj, fc1, fc2;
  };
  using DecoderLayer = DecoderWeights;
  // Token ids with the image embeddings spliced in at the runs of image tokens, in order -> [1, S, D].
  Tensor embed_prompt(const std::vector<int32_t>& ids, const std::vector<Tensor>& images);
  // A token id tensor i32 [1] (e.g. the last sampled one) -> [1, 1, D].
  Tensor embed_token(const Tensor& id);
  // Checked host positions [3, S] -> i32 [3, 1, S] on the engine, and their largest value.
  Tensor upload_positions(const std::vector<int32_t>& positions, int64_t S, int32_t* largest);
  // Runs the decoder over x [1, S, D] at positions [3, 1, S] after the cached tokens, appends
  // their keys/values to the cache and returns the logits of the last row [1, V] (all rows
  // [S, V] with all_rows).
  Tensor forward(KvCache& cache, const Tensor& x, const Tensor& positions, bool all_rows = false);
  Tensor& draws(KvCache& cache);  // the sequence's draw count, 0 until its first draw
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
