#include "core/ops.h"

#include <climits>
#include <cmath>
#include <map>

#include "core/sampling.h"

namespace latte {
namespace {

using Outs = std::vector<OutDesc>;

std::string nm(const char* op, const char* what) { return std::string(op) + ": " + what; }

void need_dtype(const char* op, const char* what, const Tensor* t, std::initializer_list<DType> ok) {
  for (DType d : ok)
    if (t->dtype == d) return;
  fail(code::kDType, nm(op, what) + " has unsupported dtype " + dtype_name(t->dtype));
}
void need_ndim(const char* op, const char* what, const Tensor* t, int lo, int hi) {
  if (t->shape.ndim < lo || t->shape.ndim > hi)
    fail(code::kShape, nm(op, what) + " must have " + std::to_string(lo) + ".." + std::to_string(hi) +
                           " dims, got " + t->shape.str());
}
void need_shape(const char* op, const char* what, const Tensor* t, const Shape& s) {
  if (t->shape != s) fail(code::kShape, nm(op, what) + " must be " + s.str() + ", got " + t->shape.str());
}
void need_f32(const char* op, const char* what, const Tensor* t) { need_dtype(op, what, t, {DType::F32}); }
void need_vec(const char* op, const char* what, const Tensor* t, int64_t n) {
  need_f32(op, what, t);
  need_shape(op, what, t, Shape{n});
}
Shape with_last(Shape s, int64_t last) {
  s[-1] = last;
  return s;
}

// ---- linear algebra -------------------------------------------------------------------------
Outs infer_pack_linear(const Inputs& in, const OpAttrs& a) {
  need_dtype("pack_linear", "weight", in[0], {DType::F32, DType::BF16, DType::F16});
  need_ndim("pack_linear", "weight", in[0], 2, 2);
  if (a.dtype != DType::F32 && a.dtype != DType::BF16 && a.dtype != DType::Q8) fail(code::kArg, "pack_linear: compute dtype must be f32, bf16 or q8");
  return {{a.dtype, in[0]->shape, true}};
}
void run_pack_linear(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  auto p = be.pack_linear(*in[0], a.dtype);
  if (auto pool = out[0].buf->pool.lock()) pool->account_packed(int64_t(p->bytes()));
  out[0].buf->packed = std::move(p);
}

Outs infer_linear(const Inputs& in, const OpAttrs&) {
  const Tensor *x = in[0], *w = in[1], *b = in[2];
  need_f32("linear", "input", x);
  need_ndim("linear", "input", x, 1, kMaxDims);
  need_dtype("linear", "weight", w, {DType::F32, DType::BF16, DType::F16, DType::Q8});
  need_ndim("linear", "weight", w, 2, 2);
  if (w->dtype == DType::Q8 && !w->buf->is_packed) fail(code::kDType, "linear: a q8 weight must come from pack_linear");
  if (w->shape[1] != x->shape[-1])
    fail(code::kShape, "linear: input " + x->shape.str() + " does not match weight " + w->shape.str());
  if (b) need_vec("linear", "bias", b, w->shape[0]);
  return {{DType::F32, with_last(x->shape, w->shape[0])}};
}
void run_linear(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) {
  be.linear(*in[0], *in[1], in[2], out[0]);
}

Outs infer_embedding(const Inputs& in, const OpAttrs&) {
  need_dtype("embedding", "table", in[0], {DType::F32, DType::BF16, DType::F16});
  need_ndim("embedding", "table", in[0], 2, 2);
  need_dtype("embedding", "ids", in[1], {DType::I32});
  need_ndim("embedding", "ids", in[1], 1, kMaxDims - 1);
  Shape s = in[1]->shape;
  s.d[s.ndim++] = in[0]->shape[1];
  return {{DType::F32, s}};
}
void run_embedding(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) {
  be.embedding(*in[0], *in[1], out[0]);
}

// ---- norms ----------------------------------------------------------------------------------
Outs infer_rms_norm(const Inputs& in, const OpAttrs& a) {
  const Tensor* x = in[0];
  need_f32("rms_norm", "input", x);
  need_ndim("rms_norm", "input", x, a.channels ? 2 : 1, kMaxDims);
  if (!(a.eps >= 0.f)) fail(code::kArg, "rms_norm: eps must be >= 0");
  int64_t n = a.channels ? x->shape[1] : x->shape[-1];
  if (in[1]) need_vec("rms_norm", "weight", in[1], n);
  if (in.size() > 2 && in[2]) need_vec("rms_norm", "bias", in[2], n);
  return {{DType::F32, x->shape}};
}
void run_rms_norm(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  be.rms_norm(*in[0], in[1], in.size() > 2 ? in[2] : nullptr, a.eps, a.channels, out[0]);
}

Outs infer_layer_norm(const Inputs& in, const OpAttrs& a) {
  need_f32("layer_norm", "input", in[0]);
  need_ndim("layer_norm", "input", in[0], 1, kMaxDims);
  if (!(a.eps >= 0.f)) fail(code::kArg, "layer_norm: eps must be >= 0");
  if (in[1]) need_vec("layer_norm", "weight", in[1], in[0]->shape[-1]);
  if (in[2]) need_vec("layer_norm", "bias", in[2], in[0]->shape[-1]);
  return {{DType::F32, in[0]->shape}};
}
void run_layer_norm(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  be.layer_norm(*in[0], in[1], in[2], a.eps, out[0]);
}

// ---- rotary embeddings ----------------------------------------------------------------------
Outs infer_rope(const Inputs& in, const OpAttrs& a) {
  const Tensor *x = in[0], *pos = in[1];
  need_f32("rope", "input", x);
  need_ndim("rope", "input", x, 4, 4);
  need_dtype("rope", "positions", pos, {DType::I32});
  need_ndim("rope", "positions", pos, 3, 3);
  int64_t d = x->shape[3];
  if (d % 2) fail(code::kShape, "rope: head dim must be even, got " + std::to_string(d));
  if (pos->shape[1] != x->shape[0] || pos->shape[2] != x->shape[1])
    fail(code::kShape, "rope: positions " + pos->shape.str() + " must be [axes," + std::to_string(x->shape[0]) +
                           "," + std::to_string(x->shape[1]) + "]");
  if (d > 1024) fail(code::kShape, "rope: head dim above 1024");
  if (a.n_sections < 0 || a.n_sections > 4) fail(code::kArg, "rope: at most 4 sections");
  if (a.n_sections) {
    int64_t sum = 0;
    for (int i = 0; i < a.n_sections; i++) {
      if (a.sections[i] <= 0) fail(code::kArg, "rope: sections must be positive");
      sum += a.sections[i];
    }
    if (sum != d / 2) fail(code::kArg, "rope: sections must add up to head_dim/2 = " + std::to_string(d / 2));
  }
  if (!(a.theta > 0.f)) fail(code::kArg, "rope: theta must be > 0");
  return {{DType::F32, x->shape}};
}
void run_rope(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  RopeArgs r{in[0], in[1], &out[0], a.theta, a.n_sections, {}, a.restart};
  if (a.n_sections == 0) {
    r.n_sections = 1;
    r.sections[0] = int(in[0]->shape[3] / 2);
  } else {
    for (int i = 0; i < 4; i++) r.sections[i] = a.sections[i];
  }
  be.rope(r);
}

// ---- attention ------------------------------------------------------------------------------
// Inputs: q, k, v, residual?, gate?, past?, prompt_len?. Outputs: o, and the image-key logits when
// asked for. past (i32 [1], read when the op runs): only keys [0, past + Sq) exist, as in a
// preallocated cache. prompt_len (i32 [B], read when it runs): row b's keys [prompt_len[b],
// image_col0) are padding (rows of a batch whose prompts differ in length); values clamp to [0, image_col0].
Outs infer_attention(const Inputs& in, const OpAttrs& a) {
  const Tensor *q = in[0], *k = in[1], *v = in[2];
  const Tensor* res = in.size() > 3 ? in[3] : nullptr;
  const Tensor* gate = in.size() > 4 ? in[4] : nullptr;
  const Tensor* past = in.size() > 5 ? in[5] : nullptr;
  const Tensor* prompt_len = in.size() > 6 ? in[6] : nullptr;
  for (auto* t : {q, k, v}) {
    need_f32("attention", "q/k/v", t);
    need_ndim("attention", "q/k/v", t, 4, 4);
  }
  int64_t B = q->shape[0], Sq = q->shape[1], H = q->shape[2], d = q->shape[3];
  int64_t Skv = k->shape[1], G = k->shape[2];
  if (k->shape[0] != B || k->shape[3] != d) fail(code::kShape, "attention: k " + k->shape.str() + " does not fit q " + q->shape.str());
  need_shape("attention", "v", v, k->shape);
  if (G <= 0 || H % G) fail(code::kShape, "attention: query heads (" + std::to_string(H) + ") must be a multiple of kv heads (" + std::to_string(G) + ")");
  if (Sq > Skv) fail(code::kShape, "attention: more queries than keys (queries are the last Sq key positions)");
  if (a.mask < 0 || a.mask > 2) fail(code::kArg, "attention: mask must be none, causal or prefix_causal");
  if (a.mask == int(Mask::PrefixCausal) && (a.prefix_len < 0 || a.prefix_len > Skv))
    fail(code::kArg, "attention: prefix_len out of range");
  bool has_image = a.image_col0 >= 0;
  if (has_image && a.image_col0 >= Skv) fail(code::kArg, "attention: image_col0 beyond the keys");
  if ((res || gate || a.return_logits) && !has_image) fail(code::kArg, "attention: residual logits need image_col0");
  if (!(a.scale >= 0.f)) fail(code::kArg, "attention: scale must be >= 0");
  int64_t Ni = has_image ? Skv - a.image_col0 : 0;
  Shape lshape{B, H, Sq, Ni};
  if (res) {
    need_f32("attention", "residual", res);
    need_shape("attention", "residual", res, lshape);
    if (!gate) fail(code::kArg, "attention: a residual needs a gate");
  }
  if (gate) {
    need_f32("attention", "gate", gate);
    need_shape("attention", "gate", gate, Shape{B, H});
    if (!res) fail(code::kArg, "attention: a gate needs a residual");
  }
  if (past) {
    need_dtype("attention", "past", past, {DType::I32});
    need_shape("attention", "past", past, Shape{1});
    if (has_image) fail(code::kArg, "attention: past cannot be combined with an image block");
    if (a.mask == int(Mask::PrefixCausal)) fail(code::kArg, "attention: past works with the none and causal masks");
  }
  if (prompt_len) {
    need_dtype("attention", "prompt_len", prompt_len, {DType::I32});
    need_shape("attention", "prompt_len", prompt_len, Shape{B});
    if (!has_image) fail(code::kArg, "attention: prompt_len needs image_col0 (the padding lies before the image block)");
  }
  Outs o{{DType::F32, q->shape}};
  if (a.return_logits) o.push_back({DType::F32, lshape});
  return o;
}
void run_attention(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  AttentionArgs args{};
  args.q = in[0];
  args.k = in[1];
  args.v = in[2];
  args.residual = in.size() > 3 ? in[3] : nullptr;
  args.gate = in.size() > 4 ? in[4] : nullptr;
  args.out = &out[0];
  args.logits = a.return_logits ? &out[1] : nullptr;
  args.scale = a.scale > 0.f ? a.scale : 1.f / std::sqrt(float(in[0]->shape[3]));
  args.mask = Mask(a.mask);
  args.prefix_len = a.prefix_len;
  args.image_col0 = a.image_col0 < 0 ? in[1]->shape[1] : a.image_col0;
  args.past = in.size() > 5 ? in[5] : nullptr;
  args.prompt_len = in.size() > 6 ? in[6] : nullptr;
  args.bf16 = a.bf16;
  be.attention(args);
}

// ---- elementwise ----------------------------------------------------------------------------
Outs infer_same_f32(const Inputs& in, const OpAttrs&) {
  need_f32("elementwise", "input", in[0]);
  return {{DType::F32, in[0]->shape}};
}
template <Unary U>
void run_unary(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) { be.unary(U, *in[0], out[0]); }
void run_gelu(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  if (a.gelu < 0 || a.gelu > 2) fail(code::kArg, "gelu: mode must be quick, tanh or erf");
  be.unary(a.gelu == 0 ? Unary::GeluQuick : a.gelu == 1 ? Unary::GeluTanh : Unary::GeluErf, *in[0], out[0]);
}
void run_softmax(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) { be.softmax(*in[0], out[0]); }
constexpr auto run_silu = run_unary<Unary::Silu>;
constexpr auto run_relu = run_unary<Unary::Relu>;
constexpr auto run_tanh = run_unary<Unary::Tanh>;

// b broadcasts over a's leading dims: b's shape must equal a trailing slice of a's shape.
Outs infer_binary(const Inputs& in, const OpAttrs&) {
  const Tensor *a = in[0], *b = in[1];
  need_f32("binary", "a", a);
  need_f32("binary", "b", b);
  bool ok = b->shape.ndim <= a->shape.ndim;
  for (int i = 1; ok && i <= b->shape.ndim; i++) ok = b->shape[-i] == a->shape[-i];
  if (!ok) fail(code::kShape, "binary: " + b->shape.str() + " does not broadcast to " + a->shape.str());
  return {{DType::F32, a->shape}};
}
template <Binary O>
void run_binary(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) { be.binary(O, *in[0], *in[1], out[0]); }
constexpr auto run_add = run_binary<Binary::Add>;
constexpr auto run_mul = run_binary<Binary::Mul>;

// alpha * a + beta * b (same shapes): the sampler's CFG combine and Euler/Heun updates in one op.
Outs infer_axpby(const Inputs& in, const OpAttrs& a) {
  need_f32("axpby", "a", in[0]);
  need_f32("axpby", "b", in[1]);
  if (in[0]->shape != in[1]->shape) fail(code::kShape, "axpby: " + in[0]->shape.str() + " and " + in[1]->shape.str() + " differ");
  if (!std::isfinite(a.alpha) || !std::isfinite(a.beta)) fail(code::kArg, "axpby: alpha and beta must be finite");
  return {{DType::F32, in[0]->shape}};
}
void run_axpby(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) { be.axpby(a.alpha, *in[0], a.beta, *in[1], out[0]); }

// DC-AE's (Sana's) ReLU linear attention: qkv [B, heads * 3 * d, H, W], each head's consecutive
// 3d channels are its (q, k, v) -> [B, heads * d, H, W].
Outs infer_relu_linear_attention(const Inputs& in, const OpAttrs& a) {
  need_f32("relu_linear_attention", "qkv", in[0]);
  const Shape& s = in[0]->shape;
  if (s.ndim != 4) fail(code::kShape, "relu_linear_attention: qkv must be [B, C, H, W], got " + s.str());
  if (a.head_dim <= 0 || s[1] % (3 * a.head_dim)) fail(code::kArg, "relu_linear_attention: channels " + std::to_string(s[1]) + " are not a multiple of 3 * head_dim " + std::to_string(a.head_dim));
  return {{DType::F32, Shape{s[0], s[1] / 3, s[2], s[3]}}};
}
void run_relu_linear_attention(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) { be.relu_linear_attention(*in[0], a.head_dim, a.eps, out[0]); }

Outs infer_swiglu(const Inputs& in, const OpAttrs&) {
  need_f32("swiglu", "gate", in[0]);
  need_f32("swiglu", "up", in[1]);
  need_shape("swiglu", "up", in[1], in[0]->shape);
  return {{DType::F32, in[0]->shape}};
}
void run_swiglu(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) { be.swiglu(*in[0], *in[1], out[0]); }

// Per-sample vectors [B, D] applied to every token of x [B, S, D].
void need_per_sample(const char* op, const char* what, const Tensor* x, const Tensor* v) {
  need_f32(op, what, v);
  need_shape(op, what, v, Shape{x->shape[0], x->shape[2]});
}
Outs infer_modulate(const Inputs& in, const OpAttrs&) {
  need_f32("modulate", "input", in[0]);
  need_ndim("modulate", "input", in[0], 3, 3);
  need_per_sample("modulate", "shift", in[0], in[1]);
  need_per_sample("modulate", "scale", in[0], in[2]);
  return {{DType::F32, in[0]->shape}};
}
void run_modulate(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) { be.modulate(*in[0], *in[1], *in[2], out[0]); }

Outs infer_gated_add(const Inputs& in, const OpAttrs&) {
  need_f32("gated_add", "h", in[0]);
  need_ndim("gated_add", "h", in[0], 3, 3);
  need_per_sample("gated_add", "gate", in[0], in[1]);
  need_f32("gated_add", "x", in[2]);
  need_shape("gated_add", "x", in[2], in[0]->shape);
  return {{DType::F32, in[0]->shape}};
}
void run_gated_add(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) { be.gated_add(*in[0], *in[1], *in[2], out[0]); }

Outs infer_convert(const Inputs& in, const OpAttrs& a) {
  need_dtype("convert", "input", in[0], {DType::F32, DType::BF16, DType::F16});
  if (a.dtype == DType::I32 || a.dtype == DType::Q8) fail(code::kArg, "convert: target must be f32, bf16 or f16");
  return {{a.dtype, in[0]->shape}};
}
void run_convert(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs&) { be.convert(*in[0], out[0]); }

// Joins a and b along `axis` (e.g. a K/V cache and new keys along the sequence).
Outs infer_concat(const Inputs& in, const OpAttrs& a) {
  const Tensor *x = in[0], *y = in[1];
  if (x->dtype != y->dtype) fail(code::kDType, "concat: operands differ in dtype");
  if (x->shape.ndim != y->shape.ndim || x->shape.ndim == 0) fail(code::kShape, "concat: operands differ in rank");
  int ax = a.axis < 0 ? a.axis + x->shape.ndim : a.axis;
  if (ax < 0 || ax >= x->shape.ndim) fail(code::kArg, "concat: axis out of range");
  Shape s = x->shape;
  for (int i = 0; i < s.ndim; i++)
    if (i != ax && x->shape[i] != y->shape[i]) fail(code::kShape, "concat: " + x->shape.str() + " and " + y->shape.str() + " differ off the axis");
  s[ax] = x->shape[ax] + y->shape[ax];
  return {{x->dtype, s}};
}
void run_concat(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  be.concat(*in[0], *in[1], a.axis < 0 ? a.axis + in[0]->shape.ndim : a.axis, out[0]);
}

// Rows [start, start + length) of `axis` (a copy): splits fused q/k/v outputs, picks the last token.
Outs infer_slice(const Inputs& in, const OpAttrs& a) {
  const Shape& s = in[0]->shape;
  int ax = a.axis < 0 ? a.axis + s.ndim : a.axis;
  if (ax < 0 || ax >= s.ndim) fail(code::kArg, "slice: axis out of range for " + s.str());
  if (a.start < 0 || a.length <= 0 || a.start + a.length > s[ax])
    fail(code::kArg, "slice: [" + std::to_string(a.start) + ", " + std::to_string(a.start + a.length) + ") is not inside dim " + std::to_string(ax) + " of " + s.str());
  Shape o = s;
  o[ax] = a.length;
  return {{in[0]->dtype, o}};
}
void run_slice(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  be.slice(*in[0], a.axis < 0 ? a.axis + in[0]->shape.ndim : a.axis, a.start, out[0]);
}

// Seeded standard-normal noise of attrs.shape (f32): element i = rng::normal(key(seed), offset + i).
Outs infer_noise(const Inputs&, const OpAttrs& a) {
  if (a.shape.ndim == 0) fail(code::kArg, "noise: a shape is required");
  for (int i = 0; i < a.shape.ndim; i++)
    if (a.shape.d[i] <= 0) fail(code::kShape, "noise: dimensions must be positive, got " + a.shape.str());
  return {{DType::F32, a.shape}};
}
void run_noise(Backend& be, const Inputs&, std::vector<Tensor>& out, const OpAttrs& a) { be.normal_noise(a.seed, a.offset, out[0]); }

Outs infer_zeros(const Inputs&, const OpAttrs& a) {
  if (a.shape.ndim == 0) fail(code::kArg, "zeros: a shape is required");
  for (int i = 0; i < a.shape.ndim; i++)
    if (a.shape.d[i] <= 0) fail(code::kShape, "zeros: dimensions must be positive, got " + a.shape.str());
  return {{DType::F32, a.shape}};
}
void run_zeros(Backend& be, const Inputs&, std::vector<Tensor>& out, const OpAttrs&) { be.zero(out[0]); }

// In place (OpDef::in_place): dst [B, N, ...] rows [at, at + S) = src [B, S, ...]; at i32 [1] is read
// when it runs, so a recorded decode step appends at whatever length the cache has then.
Outs infer_write_rows(const Inputs& in, const OpAttrs&) {
  const Tensor *dst = in[0], *src = in[1], *at = in[2];
  need_f32("write_rows", "dst", dst);
  need_f32("write_rows", "src", src);
  need_dtype("write_rows", "at", at, {DType::I32});
  need_shape("write_rows", "at", at, Shape{1});
  need_ndim("write_rows", "dst", dst, 2, kMaxDims);
  Shape want = dst->shape;
  want[1] = src->shape.ndim == dst->shape.ndim ? src->shape[1] : -1;
  if (src->shape != want || src->shape[1] > dst->shape[1])
    fail(code::kShape, "write_rows: src " + src->shape.str() + " must be dst " + dst->shape.str() + " with at most as many rows along axis 1");
  if (dst->buf == src->buf) fail(code::kArg, "write_rows: src and dst share memory");
  return {};
}
void run_write_rows(Backend& be, const Inputs& in, std::vector<Tensor>&, const OpAttrs&) { be.write_rows(*in[1], *in[2], *const_cast<Tensor*>(in[0])); }

// A count carried on the engine: at (i32 [1]) + attrs.length. `after` is any tensor the result must
// wait for: if it was never computed (its op failed), neither is the count, so a K/V cache whose
// step failed cannot be appended to as if the step had written its rows.
Outs infer_advance(const Inputs& in, const OpAttrs& a) {
  need_dtype("advance", "at", in[0], {DType::I32});
  need_shape("advance", "at", in[0], Shape{1});
  if (a.length < 0 || a.length > INT32_MAX) fail(code::kArg, "advance: the step must be in [0, 2^31)");
  return {{DType::I32, Shape{1}}};
}
void run_advance(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) { be.advance(*in[0], a.length, out[0]); }

// Next-token choice on the engine: logits [..., V] f32 -> i32 ids [...] (one per row). The draw's
// step is attrs.offset, or the optional i32 [1] operand read when it runs: a recorded decode step
// takes its step from the sequence's counter, so every replay draws anew.
Outs infer_sample(const Inputs& in, const OpAttrs& a) {
  need_f32("sample", "logits", in[0]);
  if (in.size() > 1 && in[1]) {
    need_dtype("sample", "step", in[1], {DType::I32});
    need_shape("sample", "step", in[1], Shape{1});
  }
  if (const char* why = sampling::invalid(a.temperature, a.top_k, a.top_p)) fail(code::kArg, std::string("sample: ") + why);
  Shape s = in[0]->shape;
  if (s.ndim == 1) return {{DType::I32, Shape{1}}};
  s.ndim--;
  return {{DType::I32, s}};
}
void run_sample(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  be.sample_tokens(*in[0], a.temperature, a.top_k, a.top_p, a.seed, a.offset, in.size() > 1 ? in[1] : nullptr, out[0]);
}

// Reorders dimensions (torch.permute): e.g. latents [B,C,h,w] -> tokens [B,h,w,C] for patchify.
Outs infer_permute(const Inputs& in, const OpAttrs& a) {
  const Shape& s = in[0]->shape;
  if (a.n_perm != s.ndim) fail(code::kArg, "permute: perm must list all " + std::to_string(s.ndim) + " dimensions");
  bool seen[kMaxDims] = {false};
  Shape o = s;
  for (int i = 0; i < s.ndim; i++) {
    int p = a.perm[i];
    if (p < 0 || p >= s.ndim || seen[p]) fail(code::kArg, "permute: perm must be a permutation of 0.." + std::to_string(s.ndim - 1));
    seen[p] = true;
    o.d[i] = s.d[p];
  }
  return {{in[0]->dtype, o}};
}
void run_permute(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) { be.permute(*in[0], a.perm, out[0]); }

// ---- image ops (DC-AE) ----------------------------------------------------------------------
Outs infer_conv2d(const Inputs& in, const OpAttrs& a) {
  const Tensor *x = in[0], *w = in[1], *b = in[2];
  need_f32("conv2d", "input", x);
  need_ndim("conv2d", "input", x, 4, 4);
  need_f32("conv2d", "weight", w);
  need_ndim("conv2d", "weight", w, 4, 4);
  if (a.stride < 1 || a.padding < 0 || a.groups < 1) fail(code::kArg, "conv2d: stride >= 1, padding >= 0, groups >= 1");
  int64_t cin = x->shape[1], cout = w->shape[0];
  if (cin % a.groups || cout % a.groups || w->shape[1] * a.groups != cin)
    fail(code::kShape, "conv2d: weight " + w->shape.str() + " does not fit input " + x->shape.str() + " with groups " + std::to_string(a.groups));
  if (b) need_vec("conv2d", "bias", b, cout);
  int64_t ho = (x->shape[2] + 2 * a.padding - w->shape[2]) / a.stride + 1;
  int64_t wo = (x->shape[3] + 2 * a.padding - w->shape[3]) / a.stride + 1;
  if (ho < 1 || wo < 1) fail(code::kShape, "conv2d: kernel larger than the padded input");
  return {{DType::F32, Shape{x->shape[0], cout, ho, wo}}};
}
void run_conv2d(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) {
  be.conv2d(Conv2dArgs{in[0], in[1], in[2], &out[0], a.stride, a.padding, a.groups});
}

Outs infer_pixel_shuffle(const Inputs& in, const OpAttrs& a) {
  need_f32("pixel_shuffle", "input", in[0]);
  need_ndim("pixel_shuffle", "input", in[0], 4, 4);
  int64_t r = a.factor;
  if (r < 1) fail(code::kArg, "pixel_shuffle: factor must be >= 1");
  const Shape& s = in[0]->shape;
  if (s[1] % (r * r)) fail(code::kShape, "pixel_shuffle: channels must divide by factor^2");
  return {{DType::F32, Shape{s[0], s[1] / (r * r), s[2] * r, s[3] * r}}};
}
void run_pixel_shuffle(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) { be.pixel_shuffle(*in[0], a.factor, out[0]); }

Outs infer_upsample(const Inputs& in, const OpAttrs& a) {
  need_f32("upsample_nearest", "input", in[0]);
  need_ndim("upsample_nearest", "input", in[0], 4, 4);
  if (a.factor < 1) fail(code::kArg, "upsample_nearest: factor must be >= 1");
  const Shape& s = in[0]->shape;
  return {{DType::F32, Shape{s[0], s[1], s[2] * a.factor, s[3] * a.factor}}};
}
void run_upsample(Backend& be, const Inputs& in, std::vector<Tensor>& out, const OpAttrs& a) { be.upsample_nearest(*in[0], a.factor, out[0]); }

// one entry per row of op_list.h, in its order (indexed by Op)
const OpDef kOps[] = {
#define LATTE_OP_DEF(id, name, lo, hi, infer, run, flags) {Op::id, name, lo, hi, infer_##infer, run_##run, flags},
    LATTE_OPS(LATTE_OP_DEF)
#undef LATTE_OP_DEF
};

}  // namespace

const OpDef& op_def(Op op) { return kOps[int(op)]; }

const OpDef* find_op(const std::string& name) {
  static const std::map<std::string, const OpDef*> by_name = [] {
    std::map<std::string, const OpDef*> m;
    for (const OpDef& d : kOps) m[d.name] = &d;
    return m;
  }();
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : it->second;
}

std::vector<std::string> op_names() {
  std::vector<std::string> v;
  for (const OpDef& d : kOps) v.push_back(d.name);
  return v;
}

}  // namespace latte
