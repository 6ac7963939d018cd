#include "model/qwen2vl.h"

#include <algorithm>
#include <climits>

#include "core/sampling.h"
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
  g_.attention_bf16 = storage == DType::BF16;
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

KvCache KvCache::assigned(std::vector<Tensor> k, std::vector<Tensor> v) {
  if (k.empty() || k.size() != v.size()) fail(code::kArg, "assign: one key and one value tensor per layer");
  for (size_t i = 0; i < k.size(); i++)
    if (k[i].dtype != DType::F32 || k[i].shape.ndim != 4 || k[i].shape[0] != 1 || k[i].shape != v[i].shape || v[i].dtype != k[i].dtype || k[i].shape != k[0].shape)
      fail(code::kShape, "assign: every layer's k and v must be f32 [1, P, G, d] of one shape, got " + k[i].desc() + " and " + v[i].desc());
  KvCache c;
  c.length = k[0].shape[1];
  c.k = std::move(k);
  c.v = std::move(v);
  return c;
}

Tensor Qwen2VL::encode_image(const Tensor& pixels, int64_t t, int64_t h, int64_t w, const std::vector<int32_t>& patch_positions) {
  const VisionConfig& vc = cfg_.vision;
  const int64_t m = vc.spatial_merge_size, E = vc.embed_dim, H = vc.num_heads, d = vc.head_dim();
  if (t != 1) fail(code::kArg, "encode_image: only still images (grid t = 1) are supported, got t = " + std::to_string(t));
  if (h <= 0 || w <= 0 || h % m || w % m)
    fail(code::kArg, "encode_image: grid " + std::to_string(h) + "x" + std::to_string(w) + " must be positive multiples of the merge size " + std::to_string(m));
  const int64_t N = h * w;
  if (pixels.dtype != DType::F32 || pixels.shape != Shape{N, vc.patch_features()})
    fail(code::kShape, "encode_image: pixel values must be f32 [" + std::to_string(N) + ", " + std::to_string(vc.patch_features()) + "], got " + pixels.desc());

  if (int64_t(patch_positions.size()) != 2 * N)
    fail(code::kShape, "encode_image: patch positions must list the " + std::to_string(N) + " rows then the " + std::to_string(N) + " cols, got " + std::to_string(patch_positions.size()) + " values");
  for (int64_t i = 0; i < N; i++) {
    const int32_t row = patch_positions[size_t(i)], col = patch_positions[size_t(N + i)];
    if (row < 0 || row >= h || col < 0 || col >= w)
      fail(code::kArg, "encode_image: patch " + std::to_string(i) + " at (" + std::to_string(row) + ", " + std::to_string(col) + ") is outside the " + std::to_string(h) + "x" + std::to_string(w) + " grid");
  }

  Tensor x = g_.linear(pixels, patch_embed_);  // [N, E]
  Tensor pos = g_.upload_i32(patch_positions, Shape{2, 1, N});
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

Tensor Qwen2VL::upload_positions(const std::vector<int32_t>& positions, int64_t S, int32_t* largest) {
  if (int64_t(positions.size()) != 3 * S)
    fail(code::kShape, "positions must be [3, " + std::to_string(S) + "] (t, h, w rows), got " + std::to_string(positions.size()) + " values");
  int32_t mx = 0;
  for (int32_t p : positions) {
    if (p < 0) fail(code::kArg, "positions must be >= 0, got " + std::to_string(p));
    mx = std::max(mx, p);
  }
  *largest = mx;
  return g_.upload_i32(positions, Shape{3, 1, S});
}

Tensor Qwen2VL::prefill(KvCache& cache, const std::vector<int32_t>& ids, const std::vector<Tensor>& images, const std::vector<int32_t>& positions, bool all_rows) {
  Tensor x = embed_prompt(ids, images);
  int32_t largest = 0;
  Tensor pos = upload_positions(positions, int64_t(ids.size()), &largest);
  Tensor logits = forward(cache, x, pos, all_rows);
  // text after the prompt counts on from its largest position (transformers' rope_deltas)
  cache.rope_delta = int64_t(largest) + 1 - cache.length;
  return logits;
}

void Qwen2VL::set_sampling(KvCache& cache, const Sampling& s) {
  if (cache.length) fail(code::kArg, "sampling: set it before the sequence's prefill");
  if (const char* why = sampling::invalid(s.temperature, s.top_k, s.top_p)) fail(code::kArg, std::string("sampling: ") + why);
  cache.sampling = s;
}

Tensor& Qwen2VL::draws(KvCache& cache) {
  if (!cache.draws.buf) cache.draws = g_.upload_i32({0}, Shape{1});
  return cache.draws;
}

Tensor Qwen2VL::sample(KvCache& cache, const Tensor& logits) {
  const int64_t V = cfg_.text.vocab_size;
  if (logits.dtype != DType::F32 || logits.shape != Shape{1, V}) fail(code::kShape, "sample: expected one token's logits f32 [1, " + std::to_string(V) + "], got " + logits.desc());
  const Sampling& s = cache.sampling;
  Tensor token = g_.sample(logits, s.temperature, s.top_k, s.top_p, s.seed, draws(cache));
  cache.draws = g_.advance(cache.draws, token, 1);
  return token;
}

Tensor Qwen2VL::head(const Tensor& rows) { return g_.linear(g_.rms_norm(rows, final_norm_, cfg_.text.rms_norm_eps), lm_head_); }

Tensor Qwen2VL::forward(KvCache& cache, const Tensor& x, const Tensor& positions, bool all_rows) {
  const int64_t D = cfg_.text.hidden_size;
  Tensor h = run_layers(cache, x, positions, int(layers_.size()));
  const int64_t S = x.shape[1];
  return head(all_rows ? g_.view(h, Shape{S, D}) : g_.view(g_.slice(h, 1, S - 1, 1), Shape{1, D}));
}

Tensor Qwen2VL::encode_prompt(KvCache& cache, const std::vector<int32_t>& ids, const std::vector<int32_t>& positions, int layers) {
  if (layers < 1 || layers > int(layers_.size()))
    fail(code::kArg, "encode_prompt: " + std::to_string(layers) + " layers requested; the VLM has " + std::to_string(layers_.size()));
  if (cache.length) fail(code::kArg, "encode_prompt: the sequence already holds tokens");
  if (cache.capacity) fail(code::kArg, "encode_prompt: the sequence is reserved for answering");
  Tensor x = embed_prompt(ids, {});
  int32_t largest = 0;
  return run_layers(cache, x, upload_positions(positions, int64_t(ids.size()), &largest), layers);
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

Qwen2VL::Decoded Qwen2VL::decode(KvCache& cache, const Tensor& token) {
  const int64_t max_pos = cfg_.text.max_positions;
  if (cache.length == 0) fail(code::kArg, "decode: the sequence has no prefill");
  if (token.dtype != DType::I32 || token.shape != Shape{1}) fail(code::kShape, "decode: expected one i32 token id [1], got " + token.desc());
  const int64_t position = cache.next_position();
  if (position < 0 || position > INT32_MAX) fail(code::kArg, "decode: position " + std::to_string(position) + " is out of range");
  Tensor pos = g_.upload_i32(std::vector<int32_t>(3, int32_t(position)), Shape{3, 1, 1});
  if (!cache.capacity) {
    Tensor logits = forward(cache, embed_token(token), pos);
    return {sample(cache, logits), logits};
  }
  if (cache.length + 1 > max_pos) fail(code::kArg, "decode: " + std::to_string(cache.length + 1) + " tokens exceed max_position_embeddings " + std::to_string(max_pos));
  make_room(cache, 1);
  const int n = int(layers_.size());
  const int64_t D = cfg_.text.hidden_size;
  const Sampling& s = cache.sampling;
  // outputs: the drawn token, its logits, and the cache's length and draw count advanced (each
  // computed only once what it counts is)
  auto step = [&](const Tensor& tok, const Tensor& p, const Tensor& past, const Tensor& drawn) {
    Tensor logits = head(g_.view(layer_stack(cache, embed_token(tok), p, n, &past), Shape{1, D}));
    Tensor next = g_.sample(logits, s.temperature, s.top_k, s.top_p, s.seed, drawn);
    return std::vector<Tensor>{next, logits, g_.advance(past, logits, 1), g_.advance(drawn, next, 1)};
  };
  Tensor& drawn = draws(cache);
  std::vector<Tensor> out;
  if (use_programs_) {
    // recorded once per sequence (its buffers and sampling settings are the program's constants; the
    // model keeps it); the token, position, length and draw count are the inputs, so every later
    // token is one replay
    auto reg = cache.step.registry();
    if (reg && reg != steps_) fail(code::kArg, "decode: the sequence's decode step belongs to another model");
    std::shared_ptr<Program> prog;
    if (reg) {
      auto it = steps_->find(cache.step.id());
      if (it != steps_->end()) prog = it->second;
    }
    if (!prog) {
      prog = g_.engine().record({token, pos, cache.len, drawn}, [&](const std::vector<Tensor>& in) { return step(in[0], in[1], in[2], in[3]); });
      const uint64_t id = next_step_++;
      (*steps_)[id] = prog;
      cache.step.bind(steps_, id);
    }
    out = g_.engine().replay(prog, {&token, &pos, &cache.len, &drawn});
  } else {
    out = step(token, pos, cache.len, drawn);
  }
  cache.added(1, out[2]);
  cache.draws = out[3];
  return {out[0], out[1]};
}

Tensor Qwen2VL::decode_batch(const std::vector<KvCache*>& caches, const Tensor& tokens) {
  const TextConfig& tc = cfg_.text;
  const int64_t M = int64_t(caches.size()), D = tc.hidden_size, H = tc.num_heads, G = tc.num_kv_heads, d = tc.head_dim();
  if (M == 0) fail(code::kArg, "decodeBatch: no sequences");
  if (tokens.dtype != DType::I32 || tokens.shape != Shape{M}) fail(code::kShape, "decodeBatch: expected " + std::to_string(M) + " i32 token ids, got " + tokens.desc());
  std::vector<int32_t> pos(size_t(3 * M));
  for (int64_t r = 0; r < M; r++) {
    KvCache& c = *caches[size_t(r)];
    for (int64_t o = 0; o < r; o++)
      if (caches[size_t(o)] == &c) fail(code::kArg, "decodeBatch: a sequence appears twice");
    if (c.length == 0) fail(code::kArg, "decodeBatch: a sequence has no prefill");
    if (!c.capacity) fail(code::kArg, "decodeBatch: every sequence must be reserved (newSequence with a capacity)");
    if (c.length + 1 > tc.max_positions) fail(code::kArg, "decodeBatch: " + std::to_string(c.length + 1) + " tokens exceed max_position_embeddings " + std::to_string(tc.max_positions));
    const int64_t position = c.next_position();
    if (position < 0 || position > INT32_MAX) fail(code::kArg, "decodeBatch: position " + std::to_string(position) + " is out of range");
    for (int a = 0; a < 3; a++) pos[size_t(a * M + r)] = int32_t(position);
  }
  for (KvCache* c : caches) make_room(*c, 1);
  Tensor positions = g_.upload_i32(pos, Shape{3, M, 1});
  const std::vector<int> sections(tc.mrope_section, tc.mrope_section + 3);
  Tensor h = g_.view(g_.embedding(embed_table_, tokens), Shape{M, 1, D});
  for (size_t l = 0; l < layers_.size(); l++) {
    const DecoderLayer& L = layers_[l];
    Tensor a = g_.rms_norm(h, L.input_norm, tc.rms_norm_eps);
    Tensor q = g_.rope(g_.view(g_.linear(a, L.q), Shape{M, 1, H, d}), positions, tc.rope_theta, sections, false);
    Tensor k = g_.rope(g_.view(g_.linear(a, L.k), Shape{M, 1, G, d}), positions, tc.rope_theta, sections, false);
    Tensor v = g_.view(g_.linear(a, L.v), Shape{M, 1, G, d});
    Tensor out;
    for (int64_t r = 0; r < M; r++) {  // each sequence writes and reads its own cache at its own length
      KvCache& c = *caches[size_t(r)];
      g_.write_rows(c.k[l], g_.slice(k, 0, r, 1), c.len);
      g_.write_rows(c.v[l], g_.slice(v, 0, r, 1), c.len);
      Tensor o = g_.attention_cached(g_.slice(q, 0, r, 1), c.k[l], c.v[l], c.len);
      out = r ? g_.concat(out, o, 0) : o;
    }
    h = g_.add(h, g_.linear(g_.view(out, Shape{M, 1, D}), L.o));
    Tensor mlp_in = g_.rms_norm(h, L.post_norm, tc.rms_norm_eps);
    h = g_.add(h, g_.linear(g_.swiglu(g_.linear(mlp_in, L.gate), g_.linear(mlp_in, L.up)), L.down));
  }
  Tensor logits = head(g_.view(h, Shape{M, D}));  // [M, V]
  Tensor next;
  for (int64_t r = 0; r < M; r++) {
    KvCache& c = *caches[size_t(r)];
    Tensor row = g_.slice(logits, 0, r, 1);
    const Sampling& s = c.sampling;
    Tensor& drawn = draws(c);
    Tensor t = g_.sample(row, s.temperature, s.top_k, s.top_p, s.seed, drawn);
    c.draws = g_.advance(drawn, t, 1);
    c.added(1, g_.advance(c.len, row, 1));
    next = r ? g_.concat(next, t, 0) : t;
  }
  return next;
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
    cache.added(S, g_.advance(cache.len, h, S));
  } else {
    if (cache.length && int(cache.k.size()) < n_layers) fail(code::kArg, "forward: the sequence was encoded with fewer layers");
    if (cache.k.empty()) {
      cache.k.resize(size_t(n_layers));
      cache.v.resize(size_t(n_layers));
    }
    h = layer_stack(cache, x, positions, n_layers, nullptr);
    cache.added(S, Tensor{});
  }
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
