#include "model/qwen2vl.h"

#include <algorithm>
#include <climits>

#include "io/safetensors.h"

namespace latte::model {

namespace {
// transformers 5 saves the decoder under model.language_model.* and the tower under model.visual.*
const std::vector<std::pair<std::string, std::string>> kAliases = {
    {"model.", "model.language_model."}, {"visual.", "model.visual."}, {"lm_head.", "model.lm_head."}};
const float kVisionNormEps = 1e-6f;
const float kVisionRopeTheta = 10000.f;
}  // namespace

Qwen2VL::Qwen2VL(Engine& e, std::shared_ptr<io::Checkpoint> ck, const Qwen2VLConfig& cfg, DType storage) : cfg_(cfg), g_(e) {
  WeightBinder wb(e, std::move(ck), storage, kAliases);
  const VisionConfig& vc = cfg.vision;
  const TextConfig& tc = cfg.text;
  const int64_t E = vc.embed_dim, D = tc.hidden_size, m2 = int64_t(vc.spatial_merge_size) * vc.spatial_merge_size;

  // Conv3d with stride = kernel over one patch is a linear map of the flattened patch.
  Tensor pw = wb.big("visual.patch_embed.proj.weight", Shape{E, vc.in_channels, vc.temporal_patch_size, vc.patch_size, vc.patch_size});
  patch_embed_ = wb.pack(g_.view(pw, Shape{E, vc.patch_features()}), nullptr);
  for (int i = 0; i < vc.depth; i++) {
    const std::string p = "visual.blocks." + std::to_string(i) + ".";
    VisionBlock b;
    b.norm1_w = wb.small(p + "norm1.weight", Shape{E});
    b.norm1_b = wb.small(p + "norm1.bias", Shape{E});
    b.norm2_w = wb.small(p + "norm2.weight", Shape{E});
    b.norm2_b = wb.small(p + "norm2.bias", Shape{E});
    b.qkv = wb.linear(p + "attn.qkv", 3 * E, E, true);
    b.proj = wb.linear(p + "attn.proj", E, E, true);
    b.fc1 = wb.linear(p + "mlp.fc1", vc.mlp_hidden, E, true);
    b.fc2 = wb.linear(p + "mlp.fc2", E, vc.mlp_hidden, true);
    blocks_.push_back(std::move(b));
  }
  merger_norm_w_ = wb.small("visual.merger.ln_q.weight", Shape{E});
  merger_norm_b_ = wb.small("visual.merger.ln_q.bias", Shape{E});
  merger_fc1_ = wb.linear("visual.merger.mlp.0", E * m2, E * m2, true);
  merger_fc2_ = wb.linear("visual.merger.mlp.2", D, E * m2, true);

  const int64_t H = tc.num_heads, G = tc.num_kv_heads, d = tc.head_dim(), F = tc.intermediate_size, V = tc.vocab_size;
  embed_table_ = wb.big("model.embed_tokens.weight", Shape{V, D});
  for (int l = 0; l < tc.num_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    DecoderLayer L = DecoderWeights::bind(wb, p, D, H, G, d, F);
    layers_.push_back(std::move(L));
  }
  final_norm_ = wb.small("model.norm.weight", Shape{D});
  // a tied head shares the embedding table; checkpoints of tied models may still carry lm_head
  lm_head_ = tc.tie_word_embeddings ? wb.pack(embed_table_, nullptr) : wb.linear("lm_head", V, D, false);
}

// Patch (row, col) positions in the processor's order: merge windows contiguous.
Tensor Qwen2VL::vision_positions(int64_t h, int64_t w) {
  const int64_t m = cfg_.vision.spatial_merge_size, n = h * w;
  std::vector<int32_t> pos(size_t(2 * n));
  int64_t i = 0;
  for (int64_t by = 0; by < h / m; by++)
    for (int64_t bx = 0; bx < w / m; bx++)
      for (int64_t y = 0; y < m; y++)
        for (int64_t x = 0; x < m; x++, i++) {
          pos[size_t(i)] = int32_t(by * m + y);
          pos[size_t(n + i)] = int32_t(bx * m + x);
        }
  return g_.upload_i32(pos, Shape{2, 1, n});
}

Tensor Qwen2VL::encode_image(const Tensor& pixels, int64_t t, int64_t h, int64_t w) {
  const VisionConfig& vc = cfg_.vision;
  const int64_t m = vc.spatial_merge_size, E = vc.embed_dim, H = vc.num_heads, d = vc.head_dim();
  if (t != 1) fail(code::kArg, "encode_image: only still images (grid t = 1) are supported, got t = " + std::to_string(t));
  if (h <= 0 || w <= 0 || h % m || w % m)
    fail(code::kArg, "encode_image: grid " + std::to_string(h) + "x" + std::to_string(w) + " must be positive multiples of the merge size " + std::to_string(m));
  const int64_t N = h * w;
  if (pixels.dtype != DType::F32 || pixels.shape != Shape{N, vc.patch_features()})
    fail(code::kShape, "encode_image: pixel values must be f32 [" + std::to_string(N) + ", " + std::to_string(vc.patch_features()) + "], got " + pixels.desc());

  Tensor x = g_.linear(pixels, patch_embed_);  // [N, E]
  Tensor pos = vision_positions(h, w);
  const std::vector<int> sections = {int(d / 4), int(d / 4)};  // (row, col), each restarting its frequencies
  for (auto& b : blocks_) {
    Tensor a = g_.layer_norm(x, b.norm1_w, b.norm1_b, kVisionNormEps);
    Tensor qkv = g_.view(g_.linear(a, b.qkv), Shape{N, 3, H, d});
    auto part = [&](int i) { return g_.view(g_.slice(qkv, 1, i, 1), Shape{1, N, H, d}); };
    Tensor q = g_.rope(part(0), pos, kVisionRopeTheta, sections, true);
    Tensor k = g_.rope(part(1), pos, kVisionRopeTheta, sections, true);
    Tensor out = g_.attention(q, k, part(2), Mask::None);  // full attention within the image
    x = g_.add(x, g_.linear(g_.view(out, Shape{N, E}), b.proj));
    Tensor f = g_.gelu(g_.linear(g_.layer_norm(x, b.norm2_w, b.norm2_b, kVisionNormEps), b.fc1), vc.gelu);
    x = g_.add(x, g_.linear(f, b.fc2));
  }
  // merge each window of m x m neighbouring patches (contiguous rows) into one token
  Tensor merged = g_.view(g_.layer_norm(x, merger_norm_w_, merger_norm_b_, kVisionNormEps), Shape{N / (m * m), E * m * m});
  return g_.linear(g_.gelu(g_.linear(merged, merger_fc1_), 2), merger_fc2_);
}

Tensor Qwen2VL::embed_prompt(const std::vector<int32_t>& ids, const std::vector<Tensor>& images) {
  const int64_t D = cfg_.text.hidden_size, V = cfg_.text.vocab_size;
  if (ids.empty()) fail(code::kArg, "embed_prompt: the prompt has no tokens");
  for (size_t i = 0; i < ids.size(); i++)
    if (ids[i] < 0 || ids[i] >= V) fail(code::kIndex, "embed_prompt: token id " + std::to_string(ids[i]) + " at " + std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  std::vector<Tensor> parts;
  size_t next_image = 0;
  for (size_t i = 0; i < ids.size();) {
    const bool image = ids[i] == cfg_.image_token_id;
    size_t j = i;
    while (j < ids.size() && (ids[j] == cfg_.image_token_id) == image) j++;
    const int64_t n = int64_t(j - i);
    if (image) {
      if (next_image >= images.size()) fail(code::kArg, "embed_prompt: more runs of image tokens than images (" + std::to_string(images.size()) + ")");
      const Tensor& img = images[next_image++];
      if (img.dtype != DType::F32 || img.shape != Shape{n, D})
        fail(code::kShape, "embed_prompt: a run of " + std::to_string(n) + " image tokens needs image embeddings f32 [" + std::to_string(n) + ", " + std::to_string(D) + "], got " + img.desc());
      parts.push_back(img);
    } else {
      Tensor t = g_.upload_i32(std::vector<int32_t>(ids.begin() + i, ids.begin() + j), Shape{n});
      parts.push_back(g_.embedding(embed_table_, t));
    }
    i = j;
  }
  if (next_image != images.size()) fail(code::kArg, "embed_prompt: " + std::to_string(images.size()) + " images but " + std::to_string(next_image) + " runs of image tokens");
  Tensor x = parts[0];
  for (size_t i = 1; i < parts.size(); i++) x = g_.concat(x, parts[i], 0);
  return g_.view(x, Shape{1, int64_t(ids.size()), D});
}

Tensor Qwen2VL::embed_token(const Tensor& id) {
  if (id.dtype != DType::I32 || id.numel() != 1) fail(code::kShape, "embed_token: expected one i32 token id, got " + id.desc());
  return g_.view(g_.embedding(embed_table_, id), Shape{1, 1, cfg_.text.hidden_size});
}

Tensor Qwen2VL::head(const Tensor& rows) { return g_.linear(g_.rms_norm(rows, final_norm_, cfg_.text.rms_norm_eps), lm_head_); }

Tensor Qwen2VL::forward(KvCache& cache, const Tensor& x, const Tensor& positions, bool all_rows) {
  const int64_t D = cfg_.text.hidden_size;
  Tensor h = run_layers(cache, x, positions, int(layers_.size()));
  const int64_t S = x.shape[1];
  return head(all_rows ? g_.view(h, Shape{S, D}) : g_.view(g_.slice(h, 1, S - 1, 1), Shape{1, D}));
}

Tensor Qwen2VL::encode_prompt(KvCache& cache, const Tensor& x, const Tensor& positions, int layers) {
  if (layers < 1 || layers > int(layers_.size()))
    fail(code::kArg, "encode_prompt: " + std::to_string(layers) + " layers requested; the VLM has " + std::to_string(layers_.size()));
  if (cache.length) fail(code::kArg, "encode_prompt: the sequence already holds tokens");
  if (cache.capacity) fail(code::kArg, "encode_prompt: the sequence is reserved for answering");
  return run_layers(cache, x, positions, layers);
}

void Qwen2VL::reserve(KvCache& cache, int64_t capacity) {
  const TextConfig& tc = cfg_.text;
  if (cache.length || !cache.k.empty()) fail(code::kArg, "reserve: the sequence already holds tokens");
  if (capacity < 1 || capacity > tc.max_positions)
    fail(code::kArg, "reserve: capacity " + std::to_string(capacity) + " must be in [1, max_position_embeddings " + std::to_string(tc.max_positions) + "]");
  const Shape s{1, capacity, tc.num_kv_heads, tc.head_dim()};
  for (int l = 0; l < tc.num_layers; l++) {
    cache.k.push_back(g_.zeros(s));
    cache.v.push_back(g_.zeros(s));
  }
  cache.capacity = capacity;
  cache.len = g_.upload_i32({0}, Shape{1});
}

// New buffers of `capacity` rows holding the old ones' rows; the recorded step named the old buffers.
void Qwen2VL::grow(KvCache& cache, int64_t capacity) {
  const TextConfig& tc = cfg_.text;
  const Shape s{1, capacity, tc.num_kv_heads, tc.head_dim()};
  Tensor at0 = g_.upload_i32({0}, Shape{1});
  for (size_t l = 0; l < cache.k.size(); l++) {
    for (Tensor* buf : {&cache.k[l], &cache.v[l]}) {
      Tensor bigger = g_.zeros(s);
      g_.write_rows(bigger, *buf, at0);
      *buf = bigger;
    }
  }
  cache.capacity = capacity;
  cache.step.drop();
}

// Doubles a reserved cache (at least to fit, at most to the context) when `rows` more do not fit.
void Qwen2VL::make_room(KvCache& cache, int64_t rows) {
  if (cache.length + rows > cache.capacity)
    grow(cache, std::min<int64_t>(cfg_.text.max_positions, std::max(2 * cache.capacity, cache.length + rows)));
}

Tensor Qwen2VL::decode(KvCache& cache, const Tensor& token, int64_t position) {
  const int64_t max_pos = cfg_.text.max_positions;
  if (cache.length == 0) fail(code::kArg, "decode: the sequence has no prefill");
  if (position < 0 || position > INT32_MAX) fail(code::kArg, "decode: position " + std::to_string(position) + " is out of range");
  if (token.dtype != DType::I32 || token.shape != Shape{1}) fail(code::kShape, "decode: expected one i32 token id [1], got " + token.desc());
  Tensor pos = g_.upload_i32(std::vector<int32_t>(3, int32_t(position)), Shape{3, 1, 1});
  if (!cache.capacity) return forward(cache, embed_token(token), pos);
  if (cache.length + 1 > max_pos) fail(code::kArg, "decode: " + std::to_string(cache.length + 1) + " tokens exceed max_position_embeddings " + std::to_string(max_pos));
  make_room(cache, 1);
  const int n = int(layers_.size());
  const int64_t D = cfg_.text.hidden_size;
  // outputs: the logits and the cache's next length (computed only once the logits are)
  auto step = [&](const Tensor& tok, const Tensor& p, const Tensor& past) {
    Tensor logits = head(g_.view(layer_stack(cache, embed_token(tok), p, n, &past), Shape{1, D}));
    return std::vector<Tensor>{logits, g_.advance(past, logits, 1)};
  };
  std::vector<Tensor> out;
  if (use_programs_) {
    // recorded once per sequence (its buffers are the program's constants; the model keeps it);
    // the token, position and length are the inputs, so every later token is one replay
    auto reg = cache.step.registry();
    if (reg && reg != steps_) fail(code::kArg, "decode: the sequence's decode step belongs to another model");
    std::shared_ptr<Program> prog;
    if (reg) {
      auto it = steps_->find(cache.step.id());
      if (it != steps_->end()) prog = it->second;
    }
    if (!prog) {
      prog = g_.engine().record({token, pos, cache.len}, [&](const std::vector<Tensor>& in) { return step(in[0], in[1], in[2]); });
      const uint64_t id = next_step_++;
      (*steps_)[id] = prog;
      cache.step.bind(steps_, id);
    }
    out = g_.engine().replay(prog, {&token, &pos, &cache.len});
  } else {
    out = step(token, pos, cache.len);
  }
  cache.len = out[1];
  cache.length += 1;
  return out[0];
}

Tensor Qwen2VL::run_layers(KvCache& cache, const Tensor& x, const Tensor& positions, int n_layers) {
  const TextConfig& tc = cfg_.text;
  const int64_t D = tc.hidden_size;
  if (x.dtype != DType::F32 || x.shape.ndim != 3 || x.shape[0] != 1 || x.shape[2] != D)
    fail(code::kShape, "forward: hidden states must be f32 [1, S, " + std::to_string(D) + "], got " + x.desc());
  const int64_t S = x.shape[1];
  if (positions.dtype != DType::I32 || positions.shape != Shape{3, 1, S})
    fail(code::kShape, "forward: positions must be i32 [3, 1, " + std::to_string(S) + "], got " + positions.desc());
  if (cache.length + S > tc.max_positions)
    fail(code::kArg, "forward: " + std::to_string(cache.length + S) + " tokens exceed max_position_embeddings " + std::to_string(tc.max_positions));
  Tensor h;
  if (cache.capacity) {
    make_room(cache, S);
    h = layer_stack(cache, x, positions, n_layers, &cache.len);
    cache.len = g_.advance(cache.len, h, S);
  } else {
    if (cache.length && int(cache.k.size()) < n_layers) fail(code::kArg, "forward: the sequence was encoded with fewer layers");
    if (cache.k.empty()) {
      cache.k.resize(size_t(n_layers));
      cache.v.resize(size_t(n_layers));
    }
    h = layer_stack(cache, x, positions, n_layers, nullptr);
  }
  cache.length += S;
  return h;
}

Tensor Qwen2VL::layer_stack(KvCache& cache, const Tensor& x, const Tensor& positions, int n_layers, const Tensor* past) {
  const TextConfig& tc = cfg_.text;
  const int64_t D = tc.hidden_size, H = tc.num_heads, G = tc.num_kv_heads, d = tc.head_dim(), S = x.shape[1];
  const std::vector<int> sections(tc.mrope_section, tc.mrope_section + 3);
  Tensor h = x;
  for (size_t l = 0; l < size_t(n_layers); l++) {
    const DecoderLayer& L = layers_[l];
    Tensor a = g_.rms_norm(h, L.input_norm, tc.rms_norm_eps);
    Tensor q = g_.rope(g_.view(g_.linear(a, L.q), Shape{1, S, H, d}), positions, tc.rope_theta, sections, false);
    Tensor k = g_.rope(g_.view(g_.linear(a, L.k), Shape{1, S, G, d}), positions, tc.rope_theta, sections, false);
    Tensor v = g_.view(g_.linear(a, L.v), Shape{1, S, G, d});
    Tensor out;
    if (past) {  // the new rows go into the reserved buffers at the cache's length
      g_.write_rows(cache.k[l], k, *past);
      g_.write_rows(cache.v[l], v, *past);
      out = g_.attention_cached(q, cache.k[l], cache.v[l], *past);
    } else {
      if (cache.length) {
        k = g_.concat(cache.k[l], k, 1);
        v = g_.concat(cache.v[l], v, 1);
      }
      cache.k[l] = k;
      cache.v[l] = v;
      out = g_.attention(q, k, v, Mask::Causal);  // the new rows see the whole cache
    }
    h = g_.add(h, g_.linear(g_.view(out, Shape{1, S, D}), L.o));
    Tensor mlp_in = g_.rms_norm(h, L.post_norm, tc.rms_norm_eps);
    h = g_.add(h, g_.linear(g_.swiglu(g_.linear(mlp_in, L.gate), g_.linear(mlp_in, L.up)), L.down));
  }
  return h;
}

}  // namespace latte::model
