#include "model/generator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "io/safetensors.h"

namespace latte::model {

Generator::Generator(Engine& e, std::shared_ptr<io::Checkpoint> ck, const GeneratorConfig& cfg, DType storage) : cfg_(cfg), g_(e) {
  g_.attention_bf16 = storage == DType::BF16;
  WeightBinder wb(e, std::move(ck), storage);
  const int64_t D = cfg.hidden_size, H = cfg.num_heads, G = cfg.num_kv_heads, d = cfg.head_dim(), F = cfg.intermediate_size;
  const int64_t patch = int64_t(cfg.latent_channels) * cfg.patch_size * cfg.patch_size;
  time_1_ = wb.linear("time_embedder.linear_1", D, cfg.time_embed_dim, true);
  time_2_ = wb.linear("time_embedder.linear_2", D, D, true);
  patch_embed_ = wb.linear("patch_embed", D, patch, true);
  for (int l = 0; l < cfg.num_layers; l++) {
    const std::string p = "layers." + std::to_string(l) + ".";
    Layer L;
    static_cast<DecoderWeights&>(L) = DecoderWeights::bind(wb, p, D, H, G, d, F);
    L.attn_out_norm = wb.small(p + "attn_out_norm.weight", Shape{D});
    L.ffn_out_norm = wb.small(p + "ffn_out_norm.weight", Shape{D});
    L.modulation = wb.linear(p + "modulation", 4 * D, D, true);
    L.tcra_gate = wb.linear(p + "tcra_gate", H, D, true);
    layers_.push_back(std::move(L));
  }
  final_norm_ = wb.small("norm.weight", Shape{D});
  head_modulation_ = wb.linear("head_modulation", 2 * D, D, true);
  proj_out_ = wb.linear("proj_out", patch, D, true);
}

// DiT sinusoid of float32(time_scale * t): [cos(a_j), sin(a_j)], a_j = a * max_period^(-j/half),
// rounded to float32 at the reference's steps (forward() then takes c = linear_2(SiLU(linear_1(.)))).
std::vector<float> Generator::time_features(double t) {
  const int half = cfg_.time_embed_dim / 2;
  std::vector<float> f(size_t(cfg_.time_embed_dim));
  const float a0 = float(float(t) * cfg_.time_scale);
  for (int j = 0; j < half; j++) {
    const float freq = float(std::exp(double(float((-std::log(double(cfg_.time_max_period)) * j) / half))));
    const float a = a0 * freq;
    f[size_t(j)] = float(std::cos(double(a)));
    f[size_t(half + j)] = float(std::sin(double(a)));
  }
  return f;
}

Tensor Generator::upload_features(const std::vector<double>& ts) {
  std::vector<float> all;
  for (double t : ts) {
    auto f = time_features(t);
    all.insert(all.end(), f.begin(), f.end());
  }
  return g_.engine().upload(DType::F32, Shape{int64_t(ts.size()), cfg_.time_embed_dim}, all.data(), all.size() * 4);
}

// M-RoPE ids [3, R, N] of every row's image grid after its own prompt: (P, P + i, P + j).
Tensor Generator::positions(const std::vector<int64_t>& row_prompt_lens) {
  // reuse the last upload only once it ran: one skipped behind a failed op would never become ready
  if (row_prompt_lens == pos_key_ && pos_.buf && pos_.buf->ready) return pos_;
  const int64_t N = cfg_.tokens(), R = int64_t(row_prompt_lens.size());
  std::vector<int32_t> pos(size_t(3 * R * N));
  for (int64_t r = 0; r < R; r++) {
    const int64_t P = row_prompt_lens[size_t(r)];
    for (int64_t n = 0; n < N; n++) {
      const auto at = cfg_.image_position(P, n);
      for (int64_t axis = 0; axis < 3; axis++) pos[size_t((axis * R + r) * N + n)] = int32_t(at[size_t(axis)]);
    }
  }
  pos_ = g_.upload_i32(pos, Shape{3, R, N});
  pos_key_ = row_prompt_lens;
  return pos_;
}

void Generator::check_request(const Tensor& x, int first, int last, const VelocityRequest& r) {
  const GeneratorConfig& c = cfg_;
  const int64_t C = c.latent_channels, h = c.latent_h, w = c.latent_w;
  if (x.dtype != DType::F32 || x.shape.ndim != 4 || x.shape[1] != C || x.shape[2] != h || x.shape[3] != w)
    fail(code::kShape, "velocity: the latent must be f32 [B, " + std::to_string(C) + ", " + std::to_string(h) + ", " + std::to_string(w) + "], got " + x.desc());
  if (!(r.t >= 0.0 && r.t <= 1.0)) fail(code::kArg, "velocity: t must be in [0, 1]");
  if (first < 0 || last > c.num_layers || first >= last) fail(code::kArg, "velocity: bad layer range");
  if (r.images < 1) fail(code::kArg, "velocity: a request needs at least one image");
  if (!std::isfinite(r.guidance)) fail(code::kArg, "velocity: guidance must be finite");
  for (const KvCache* b : {r.cond, r.null}) {
    if (!b) continue;
    if (int(b->k.size()) < last || b->length <= 0) fail(code::kArg, "velocity: a prompt has no K/V for layer " + std::to_string(last - 1) + " (encode the prompt first)");
    if (b->capacity) fail(code::kArg, "velocity: a prompt's K/V must come from encodePrompt, not a sequence reserved for answering");
  }
  if (!r.cond) fail(code::kArg, "velocity: a request needs its prompt");
}

Tensor Generator::velocity(const Tensor& x, double t, int first, int last, const KvCache& cond, const KvCache* null, float guidance) {
  if (x.shape.ndim < 1) fail(code::kShape, "velocity: the latent must be f32 [B, C, h, w], got " + x.desc());
  const std::vector<VelocityRequest> one = {{t, &cond, null, guidance, x.shape[0]}};
  check_request(x, first, last, one[0]);
  Tensor feats = upload_features({t});
  if (!use_programs_) return forward(x, feats, first, last, one);

  // the program for this layer range, batch, guidance and these prompts' K/V buffers
  uint32_t gbits;
  std::memcpy(&gbits, &guidance, 4);
  std::vector<uintptr_t> key = {uintptr_t(first), uintptr_t(last), uintptr_t(x.shape[0]), gbits};
  for (const KvCache* b : {&cond, null}) {
    if (!b) continue;
    key.push_back(uintptr_t(b->length));
    for (int l = first; l < last; l++) {
      key.push_back(reinterpret_cast<uintptr_t>(b->k[size_t(l)].buf.get()));
      key.push_back(reinterpret_cast<uintptr_t>(b->v[size_t(l)].buf.get()));
    }
  }
  auto it = programs_.begin();
  while (it != programs_.end() && it->key != key) ++it;
  if (it == programs_.end()) {
    auto body = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{forward(in[0], in[1], first, last, one)}; };
    std::vector<const Buffer*> prompts = {cond.k[size_t(first)].buf.get()};
    if (null) prompts.push_back(null->k[size_t(first)].buf.get());
    programs_.push_back({key, std::move(prompts), g_.engine().record({x, feats}, body)});
    while (programs_.size() > size_t(cfg_.num_layers + cfg_.num_groups + 1)) programs_.pop_front();
  } else {
    programs_.splice(programs_.end(), programs_, it);
  }
  return g_.engine().replay(programs_.back().program, {&x, &feats})[0];
}

Tensor Generator::velocity_batch(const Tensor& x, int first, int last, const std::vector<VelocityRequest>& requests) {
  if (requests.empty()) fail(code::kArg, "velocityBatch: no requests");
  int64_t images = 0;
  std::vector<double> row_times;  // the rows' order in forward(): each request's cond rows, then its null rows
  for (const VelocityRequest& r : requests) {
    check_request(x, first, last, r);
    images += r.images;
    for (int64_t n = r.null ? 2 : 1; n > 0; n--)
      for (int64_t i = 0; i < r.images; i++) row_times.push_back(r.t);
  }
  if (images != x.shape[0]) fail(code::kShape, "velocityBatch: the requests have " + std::to_string(images) + " images but the latent " + x.desc());

  // every prompt of the batch in the bank: grown (and emptied) when one is longer than its slots or
  // the batch has more prompts than slots
  batches_++;
  std::vector<const KvCache*> prompts;
  int64_t longest = 0;
  for (const VelocityRequest& r : requests)
    for (const KvCache* b : {r.cond, r.null})
      if (b) {
        prompts.push_back(b);
        longest = std::max(longest, b->length);
      }
  if (longest > bank_.cap || prompts.size() > bank_.holder.size()) {
    const GeneratorConfig& c = cfg_;
    const int64_t slots = std::max<int64_t>(int64_t(prompts.size()), 2 * int64_t(bank_.holder.size()));
    bank_ = PromptBank{};
    bank_.cap = (std::max(longest, int64_t(16)) + 15) / 16 * 16;  // room for similar prompts later
    for (int l = 0; l < c.num_layers; l++) {
      bank_.k.push_back(g_.zeros(Shape{slots, bank_.cap * c.num_kv_heads * c.head_dim()}));
      bank_.v.push_back(g_.zeros(Shape{slots, bank_.cap * c.num_kv_heads * c.head_dim()}));
    }
    bank_.holder.resize(size_t(slots));
    bank_.used.assign(size_t(slots), 0);
  }
  std::vector<int32_t> slot_of_row, len_of_row;
  for (const VelocityRequest& r : requests)
    for (const KvCache* b : {r.cond, r.null})
      if (b) {
        const int slot = bank_slot(*b);
        for (int64_t i = 0; i < r.images; i++) {
          slot_of_row.push_back(slot);
          len_of_row.push_back(int32_t(b->length));
        }
      }
  const int64_t R = int64_t(slot_of_row.size());
  Banked banked{g_.upload_i32(slot_of_row, Shape{R}), g_.upload_i32(len_of_row, Shape{R})};
  return forward(x, upload_features(row_times), first, last, requests, &banked);
}

int Generator::bank_slot(const KvCache& prompt) {
  Buffer* key = prompt.k[0].buf.get();
  // free slots first, then the least recently used; never one this batch already uses
  auto better = [&](size_t s, int p) {
    if (p < 0) return true;
    const bool free_s = !bank_.holder[s], free_p = !bank_.holder[size_t(p)];
    return free_s != free_p ? free_s : bank_.used[s] < bank_.used[size_t(p)];
  };
  int pick = -1;
  for (size_t s = 0; s < bank_.holder.size(); s++) {
    if (bank_.holder[s].get() == key) {
      bank_.used[s] = batches_;
      return int(s);
    }
    if (bank_.used[s] != batches_ && better(s, pick)) pick = int(s);
  }
  if (pick < 0) fail(code::kInternal, "velocityBatch: no free prompt slot");  // the bank has a slot per prompt of the batch
  const GeneratorConfig& c = cfg_;
  const int64_t slots = int64_t(bank_.holder.size()), G = c.num_kv_heads, d = c.head_dim();
  Tensor at = g_.upload_i32({int32_t(int64_t(pick) * bank_.cap)}, Shape{1});
  for (int l = 0; l < c.num_layers; l++) {
    Tensor k = g_.view(bank_.k[size_t(l)], Shape{1, slots * bank_.cap, G, d});
    Tensor v = g_.view(bank_.v[size_t(l)], Shape{1, slots * bank_.cap, G, d});
    g_.write_rows(k, prompt.k[size_t(l)], at);
    g_.write_rows(v, prompt.v[size_t(l)], at);
  }
  bank_.holder[size_t(pick)] = prompt.k[0].buf;
  bank_.used[size_t(pick)] = batches_;
  return pick;
}

void Generator::use_programs(bool on) {
  use_programs_ = on;
  if (!on) programs_.clear();
}

void Generator::release_programs(const KvCache& a, const KvCache* b) {
  auto uses = [](const Recorded& r, const KvCache& kv) {
    for (auto& k : kv.k)
      for (const Buffer* p : r.prompts)
        if (k.buf.get() == p) return true;
    return false;
  };
  programs_.remove_if([&](const Recorded& r) { return uses(r, a) || (b && uses(r, *b)); });
  for (auto& h : bank_.holder)
    if (h && (h.get() == a.k[0].buf.get() || (b && h.get() == b->k[0].buf.get()))) h.reset();
}

Tensor Generator::forward(const Tensor& x, const Tensor& feats, int first, int last, const std::vector<VelocityRequest>& requests, const Banked* banked) {
  const GeneratorConfig& c = cfg_;
  const int64_t C = c.latent_channels, p = c.patch_size, h = c.latent_h, w = c.latent_w, N = c.tokens();
  const int64_t D = c.hidden_size, H = c.num_heads, G = c.num_kv_heads, d = c.head_dim();
  // the rows: each request's latents under its prompt (cond), then under the null prompt (CFG)
  std::vector<const KvCache*> row_kv;
  std::vector<int64_t> row_lens;
  Tensor xx;
  int64_t at = 0;
  for (const VelocityRequest& r : requests) {
    const Tensor xr = requests.size() == 1 ? x : g_.slice(x, 0, at, r.images);
    at += r.images;
    for (const KvCache* b : {r.cond, r.null}) {
      if (!b) continue;
      for (int64_t i = 0; i < r.images; i++) {
        row_kv.push_back(b);
        row_lens.push_back(b->length);
      }
      xx = xx.buf ? g_.concat(xx, xr, 0) : xr;  // [R, C, h, w]
    }
  }
  const int64_t R = int64_t(row_kv.size());
  // one time for every row: modulation [1, D] over the rows flattened [1, R*N, D]; a time per row
  // (a batch of requests): modulation [R, D] per row of [R, N, D]
  const bool per_row = feats.shape[0] > 1;
  const Shape flat = per_row ? Shape{R, N, D} : Shape{1, R * N, D};

  Tensor sc = g_.silu(g_.linear(g_.silu(g_.linear(feats, time_1_)), time_2_));  // SiLU(c) [1 or R, D]
  // patchify: [R, C, h/p, p, w/p, p] -> [R, h/p, w/p, C, p, p] -> tokens [R, N, C p p], features (c, py, px)
  Tensor patches = g_.permute(g_.view(xx, Shape{R, C, h / p, p, w / p, p}), {0, 2, 4, 1, 3, 5});
  Tensor hs = g_.linear(g_.view(patches, Shape{R, N, C * p * p}), patch_embed_);  // [R, N, D]
  Tensor pos = positions(row_lens);
  const std::vector<int> sections(c.mrope_section, c.mrope_section + 3);

  std::vector<Tensor> logits(static_cast<size_t>(R));  // TCRA: per row, the previous layer's image-key logits
  for (int l = first; l < last; l++) {
    const Layer& L = layers_[size_t(l)];
    Tensor mod = g_.linear(sc, L.modulation);  // [1 or R, 4D]: s1, s2, b2, s3
    Tensor s1 = g_.slice(mod, 1, 0, D), s2 = g_.slice(mod, 1, D, D), b2 = g_.slice(mod, 1, 2 * D, D), s3 = g_.slice(mod, 1, 3 * D, D);
    Tensor a = g_.rms_norm(hs, L.input_norm, c.rms_norm_eps);
    Tensor q = g_.rope(g_.view(g_.linear(a, L.q), Shape{R, N, H, d}), pos, c.rope_theta, sections, false);
    Tensor k = g_.rope(g_.view(g_.linear(a, L.k), Shape{R, N, G, d}), pos, c.rope_theta, sections, false);
    Tensor v = g_.view(g_.linear(a, L.v), Shape{R, N, G, d});
    const bool residual = l > first;  // no residual at the group's first layer
    Tensor gate;
    if (residual) gate = g_.tanh(g_.linear(sc, L.tcra_gate));  // [1 or R, H]
    Tensor out;
    if (banked) {
      // one attention for every row: its prompt's keys gathered from the bank (padded to the bank's
      // length, the padding masked by prompt_len), then its image keys
      const int64_t cap = bank_.cap;
      Tensor kr = g_.concat(g_.view(g_.embedding(bank_.k[size_t(l)], banked->slots), Shape{R, cap, G, d}), k, 1);
      Tensor vr = g_.concat(g_.view(g_.embedding(bank_.v[size_t(l)], banked->slots), Shape{R, cap, G, d}), v, 1);
      OpAttrs attrs;
      attrs.image_col0 = cap;
      attrs.return_logits = true;
      attrs.bf16 = g_.attention_bf16;
      const Tensor* prev = residual ? &logits[0] : nullptr;
      auto res = g_.engine().enqueue(Op::Attention, {&q, &kr, &vr, prev, residual ? &gate : nullptr, nullptr, &banked->prompt_len}, attrs);
      out = res[0];
      logits[0] = res[1];  // [R, H, N, N]
    } else {
      for (int64_t r = 0; r < R; r++) {  // attention per row: each row has its own prompt keys
        const KvCache& kv = *row_kv[size_t(r)];
        Tensor qr = g_.slice(q, 0, r, 1);
        Tensor kr = g_.concat(kv.k[size_t(l)], g_.slice(k, 0, r, 1), 1);
        Tensor vr = g_.concat(kv.v[size_t(l)], g_.slice(v, 0, r, 1), 1);
        OpAttrs attrs;
        attrs.image_col0 = kv.length;
        attrs.return_logits = true;
        attrs.bf16 = g_.attention_bf16;
        // one time for every row here (a batch with a time per row takes the banked path): gate [1, H]
        const Tensor* prev = residual ? &logits[size_t(r)] : nullptr;
        auto res = g_.engine().enqueue(Op::Attention, {&qr, &kr, &vr, prev, residual ? &gate : nullptr}, attrs);
        logits[size_t(r)] = res[1];
        out = r ? g_.concat(out, res[0], 0) : res[0];
      }
    }
    Tensor o = g_.linear(g_.view(out, flat), L.o);
    Tensor h1 = g_.gated_add(g_.view(hs, flat), s1, g_.rms_norm(o, L.attn_out_norm, c.rms_norm_eps));
    Tensor y = g_.modulate(g_.rms_norm(h1, L.post_norm, c.rms_norm_eps), b2, s2);
    Tensor mlp = g_.linear(g_.swiglu(g_.linear(y, L.gate), g_.linear(y, L.up)), L.down);
    hs = g_.view(g_.gated_add(h1, s3, g_.rms_norm(mlp, L.ffn_out_norm, c.rms_norm_eps)), Shape{R, N, D});
  }
  Tensor hm = g_.linear(sc, head_modulation_);  // [1 or R, 2D]: shift, scale
  Tensor y = g_.modulate(g_.rms_norm(g_.view(hs, flat), final_norm_, c.rms_norm_eps), g_.slice(hm, 1, 0, D), g_.slice(hm, 1, D, D));
  // unpatchify: [R, h/p, w/p, C, p, p] -> [R, C, h/p, p, w/p, p] -> [R, C, h, w]
  Tensor vout = g_.view(g_.permute(g_.view(g_.linear(y, proj_out_), Shape{R, h / p, w / p, C, p, p}), {0, 3, 1, 4, 2, 5}), Shape{R, C, h, w});
  if (requests.size() == 1 && !requests[0].null) return vout;
  // each request: v_null + w (v_cond - v_null) = w v_cond + (1 - w) v_null, in request order
  Tensor result;
  int64_t row = 0;
  for (const VelocityRequest& r : requests) {
    Tensor vr = g_.slice(vout, 0, row, r.images);
    if (r.null) vr = g_.axpby(r.guidance, vr, 1.f - r.guidance, g_.slice(vout, 0, row + r.images, r.images));
    row += r.null ? 2 * r.images : r.images;
    result = result.buf ? g_.concat(result, vr, 0) : vr;
  }
  return result;
}

}  // namespace latte::model
