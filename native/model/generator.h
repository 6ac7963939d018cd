// The LaTtE-Flow generation stream (docs/model.md section 3): L layers in K expert groups; a sampling
// step runs only the group that owns its time. Which group that is, and which layers it holds, is
// decided in one place, the TypeScript GenerationStream (lib/generator.ts); velocity() runs the
// layer range it is given: time embedding -> patch embed -> the layers (TCRA: each layer's
// image-key logits feed the next, none at the range's first layer) -> modulated head -> unpatchify,
// with the conditional and null (CFG) branches batched through every linear layer and combined at
// the end.
//
// Each (layer range, batch, prompts, guidance) is recorded once as an engine program and replayed
// per step with the step's latent and time features as its only inputs (a CUDA graph per expert
// group on the GPU; on the CPU, the same ops without per-op enqueue work).
//
// Prompt K/V come from the frozen VLM (Qwen2VL::forward fills a KvCache); a branch's image tokens
// sit at M-RoPE positions (P, P + i, P + j) after its P prompt tokens (GeneratorConfig::
// image_position, which also bounds the prompt's length). Shapes: x [B, C, h, w].
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "model/generator_config.h"
#include "model/graph.h"
#include "model/qwen2vl.h"

namespace latte::model {

// One request's share of a batched velocity (velocity_batch): its `images` latents at its own time t,
// with its own prompt K/V (and the null prompt's, for CFG) and guidance weight.
struct VelocityRequest {
  double t = 0;
  const KvCache* cond = nullptr;
  const KvCache* null = nullptr;
  float guidance = 1.f;
  int64_t images = 1;
};

class Generator {
 public:
  Generator(Engine& e, std::shared_ptr<io::Checkpoint> ck, const GeneratorConfig& cfg, DType storage);
  const GeneratorConfig& config() const { return cfg_; }

  // v(x, t) of the consecutive layers [first, last): an expert group's, or all of them (the
  // full-depth baseline). With `null`, returns null_v + guidance (cond_v - null_v).
  Tensor velocity(const Tensor& x, double t, int first, int last, const KvCache& cond, const KvCache* null, float guidance);
  // Several requests in ONE forward of layers [first, last) (the requests a scheduler found in the same
  // expert group): x [sum of images, C, h, w] in request order -> their velocities, in the same order.
  // Every row carries its own time, prompt and guidance; each request's result equals velocity()'s
  // up to float rounding (the GEMMs see more rows). Not recorded: the set of requests changes per call.
  Tensor velocity_batch(const Tensor& x, int first, int last, const std::vector<VelocityRequest>& requests);
  // Programs on (default) or off (every step enqueues its ops afresh: the reference for the tests).
  void use_programs(bool on);
  // End of a request: the programs conditioned on these prompts go, with their buffers and the
  // prompts' K/V they hold (other requests' programs stay).
  void release_programs(const KvCache& cond, const KvCache* null);

 private:
  struct Layer : DecoderWeights {  // a VLM decoder layer's weights plus the stream's own
    Tensor attn_out_norm, ffn_out_norm;
    Linear modulation, tcra_gate;
  };
  std::vector<float> time_features(double t);  // the sinusoid [E]
  Tensor upload_features(const std::vector<double>& ts);  // [rows, E]: a program input
  void check_request(const Tensor& x, int first, int last, const VelocityRequest& r);
  // A batch's prompts, packed: the rows' bank slots and real prompt lengths (i32 [R] each)
  struct Banked {
    Tensor slots, prompt_len;
  };
  // feats [1, E] (every row at one time) or [rows, E] (a time per row). banked: the rows' prompt K/V
  // come from the bank (one attention for all rows); else each row attends to its own prompt's cache
  Tensor forward(const Tensor& x, const Tensor& feats, int first, int last, const std::vector<VelocityRequest>& requests, const Banked* banked = nullptr);
  // The bank slot of `prompt`, stored there on its first use (the slot least recently used goes).
  int bank_slot(const KvCache& prompt);
  Tensor positions(const std::vector<int64_t>& row_prompt_lens);

  GeneratorConfig cfg_;
  Graph g_;
  Linear time_1_, time_2_, patch_embed_, head_modulation_, proj_out_;
  Tensor final_norm_;
  std::vector<Layer> layers_;
  // the last request's positions (they change only with the prompts' lengths and the batch)
  std::vector<int64_t> pos_key_;
  Tensor pos_;
  // recorded forwards, most recently used last; a program keeps its prompts' K/V alive, so at most
  // num_layers + num_groups + 1 are kept (a request uses num_groups of them; the rest serve
  // concurrent requests and callers that sweep layer ranges, as the benchmarks do)
  struct Recorded {
    std::vector<uintptr_t> key;  // layer range, batch, guidance bits, and each branch's length and K/V buffers
    std::vector<const Buffer*> prompts;  // each branch's first K buffer: which request it belongs to
    std::shared_ptr<Program> program;
  };
  std::list<Recorded> programs_;
  bool use_programs_ = true;
  // Prompt K/V of batched requests (velocity_batch), packed so that one gather per layer serves a
  // batch instead of one attention per row: per layer K and V [slots, cap * G * d], a prompt per slot,
  // its rows [0, length) filled (the rest is masked by the attention's prompt_len). A slot holds its
  // prompt's layer-0 K buffer: that buffer is the slot's key, and holding it keeps the address unique.
  struct PromptBank {
    int64_t cap = 0;
    std::vector<Tensor> k, v;
    std::vector<std::shared_ptr<Buffer>> holder;
    std::vector<uint64_t> used;  // the batch that used the slot last
  } bank_;
  uint64_t batches_ = 0;
};

}  // namespace latte::model
