// Op calls for model code: each enqueues one op of the op layer on the engine's stream and
// returns its output at once. Model code is written against these and never names a device.
#pragma once
#include <initializer_list>
#include <vector>

#include "latte/engine.h"
#include "model/weights.h"

namespace latte::model {

class Graph {
 public:
  explicit Graph(Engine& e) : e_(e) {}
  Engine& engine() { return e_; }
  // Attention may round to bf16 (tensor cores on CUDA; the CPU computes f32 regardless): a model with
  // bf16 weights already rounds its linear layers' activations so, and asks for it
  bool attention_bf16 = false;

  Tensor op(Op id, const std::vector<const Tensor*>& in, const OpAttrs& a = {}) { return e_.enqueue(id, in, a)[0]; }
  Tensor view(const Tensor& t, const Shape& s) { return e_.reshape(t, s); }
  Tensor upload_i32(const std::vector<int32_t>& v, const Shape& s) { return e_.upload(DType::I32, s, v.data(), v.size() * 4); }

  Tensor linear(const Tensor& x, const Linear& l) { return op(Op::Linear, {&x, &l.w, l.has_bias() ? &l.b : nullptr}); }
  Tensor add(const Tensor& a, const Tensor& b) { return op(Op::Add, {&a, &b}); }
  Tensor silu(const Tensor& x) { return op(Op::Silu, {&x}); }
  Tensor tanh(const Tensor& x) { return op(Op::Tanh, {&x}); }
  // x [B, S, D] * (1 + scale [B, D]) + shift [B, D]
  Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) { return op(Op::Modulate, {&x, &shift, &scale}); }
  // h + gate [B, D] * x
  Tensor gated_add(const Tensor& h, const Tensor& gate, const Tensor& x) { return op(Op::GatedAdd, {&h, &gate, &x}); }
  Tensor axpby(float alpha, const Tensor& a, float beta, const Tensor& b) {
    OpAttrs at;
    at.alpha = alpha;
    at.beta = beta;
    return op(Op::Axpby, {&a, &b}, at);
  }
  Tensor permute(const Tensor& x, std::initializer_list<int> perm) {
    OpAttrs a;
    for (int p : perm) a.perm[a.n_perm++] = p;
    return op(Op::Permute, {&x}, a);
  }
  Tensor swiglu(const Tensor& g, const Tensor& u) { return op(Op::Swiglu, {&g, &u}); }
  Tensor embedding(const Tensor& table, const Tensor& ids) { return op(Op::Embedding, {&table, &ids}); }
  Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) {
    OpAttrs a;
    a.eps = eps;
    return op(Op::RmsNorm, {&x, &w}, a);
  }
  Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
    OpAttrs a;
    a.eps = eps;
    return op(Op::LayerNorm, {&x, &w, &b}, a);
  }
  Tensor gelu(const Tensor& x, int mode) {
    OpAttrs a;
    a.gelu = mode;
    return op(Op::Gelu, {&x}, a);
  }
  Tensor concat(const Tensor& a, const Tensor& b, int axis) {
    OpAttrs at;
    at.axis = axis;
    return op(Op::Concat, {&a, &b}, at);
  }
  Tensor slice(const Tensor& x, int axis, int64_t start, int64_t length) {
    OpAttrs a;
    a.axis = axis;
    a.start = start;
    a.length = length;
    return op(Op::Slice, {&x}, a);
  }
  // sections: the d/2 frequencies per position axis; restart: the vision tower's 2-D form
  Tensor rope(const Tensor& x, const Tensor& pos, float theta, std::vector<int> sections, bool restart) {
    OpAttrs a;
    a.theta = theta;
    a.n_sections = int(sections.size());
    for (size_t i = 0; i < sections.size() && i < 4; i++) a.sections[i] = sections[i];
    a.restart = restart;
    return op(Op::Rope, {&x, &pos}, a);
  }
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, Mask mask) {
    OpAttrs a;
    a.mask = int(mask);
    a.bf16 = attention_bf16;
    return op(Op::Attention, {&q, &k, &v}, a);
  }
  // causal attention over a preallocated cache that held `past` (i32 [1], on the engine) keys before
  // these queries' own
  Tensor attention_cached(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& past) {
    OpAttrs a;
    a.mask = int(Mask::Causal);
    a.bf16 = attention_bf16;
    return op(Op::Attention, {&q, &k, &v, nullptr, nullptr, &past}, a);
  }
  Tensor zeros(const Shape& s) {
    OpAttrs a;
    a.shape = s;
    return op(Op::Zeros, {}, a);
  }
  // at (i32 [1]) + n, computed only once `after` is
  Tensor advance(const Tensor& at, const Tensor& after, int64_t n) {
    OpAttrs a;
    a.length = n;
    return op(Op::Advance, {&at, &after}, a);
  }
  // in place: dst rows [at, at + S) of axis 1 = src (at i32 [1], read when it runs)
  void write_rows(Tensor& dst, const Tensor& src, const Tensor& at) { e_.enqueue(Op::WriteRows, {&dst, &src, &at}, {}); }
  // one token id per row of logits, drawn at the step `step` holds (i32 [1], read when it runs, so
  // a recorded draw takes a new step at every replay); temperature 0 is greedy
  Tensor sample(const Tensor& logits, float temperature, int top_k, float top_p, uint64_t seed, const Tensor& step) {
    OpAttrs a;
    a.temperature = temperature;
    a.top_k = top_k;
    a.top_p = top_p;
    a.seed = seed;
    return op(Op::Sample, {&logits, &step}, a);
  }

 private:
  Engine& e_;
};

}  // namespace latte::model
