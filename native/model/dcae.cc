#include "model/dcae.h"

#include <cmath>

#include "io/safetensors.h"

namespace latte::model {

namespace {

const float kNormEps = 1e-5f;       // RMSNorm and BatchNorm2d
const float kAttentionEps = 1e-15f;  // LiteMLA's denominator guard
const int kGluExpand = 4;            // GLUMBConv's hidden width / channels

// Binds one decoder's weights: conv weights through the WeightBinder (names and shapes checked),
// and the few tensors that are folded at load (BatchNorm statistics, the conv before a BatchNorm)
// read on the host with the same checks.
struct Loader {
  Engine& e;
  std::shared_ptr<io::Checkpoint> ck;
  WeightBinder wb;
  ImageGraph& g;

  Conv conv(const std::string& prefix, int64_t cout, int64_t cin, int k, bool bias, int groups = 1) {
    Conv c;
    c.w = wb.big(prefix + ".weight", Shape{cout, cin / groups, k, k});
    if (bias) c.b = wb.small(prefix + ".bias", Shape{cout});
    c.padding = k / 2;
    c.groups = groups;
    return c;
  }

  std::vector<float> host(const std::string& name, const Shape& shape) {
    if (!ck->has(name)) fail(code::kBadWeights, "the checkpoint has no tensor '" + name + "' (the config requires it)");
    const io::TensorEntry& entry = ck->get(name);
    if (entry.shape != shape)
      fail(code::kBadWeights, "tensor '" + name + "' has shape " + entry.shape.str() + " but the config needs " + shape.str());
    if (entry.dtype != io::StDType::F32 && entry.dtype != io::StDType::BF16 && entry.dtype != io::StDType::F16 && entry.dtype != io::StDType::F64)
      fail(code::kBadWeights, "tensor '" + name + "' is " + entry.dtype_name + "; weights must be a float type");
    std::vector<float> v(size_t(shape.numel()));
    io::convert_entry(entry, DType::F32, v.data());
    return v;
  }
  Tensor upload(const std::vector<float>& v, const Shape& shape) { return e.upload(DType::F32, shape, v.data(), v.size() * sizeof(float)); }

  // conv (weight w [cout, ...] of `wshape`, optional bias) followed by BatchNorm2d(cout) in
  // inference mode, as one conv: y = (conv(x) - mean) / sqrt(var + eps) * gamma + beta.
  Conv conv_bn(const std::string& conv_weight, const Shape& wshape, const std::string* conv_bias, const std::string& bn, int padding) {
    const int64_t C = wshape[0], per = wshape.numel() / C;
    std::vector<float> w = host(conv_weight, wshape);
    std::vector<float> b = conv_bias ? host(*conv_bias, Shape{C}) : std::vector<float>(size_t(C), 0.f);
    std::vector<float> gamma = host(bn + ".weight", Shape{C}), beta = host(bn + ".bias", Shape{C});
    std::vector<float> mean = host(bn + ".running_mean", Shape{C}), var = host(bn + ".running_var", Shape{C});
    for (int64_t o = 0; o < C; o++) {
      if (!(var[size_t(o)] >= 0.f)) fail(code::kBadWeights, "tensor '" + bn + ".running_var' has a negative or NaN variance");
      const float scale = float(double(gamma[size_t(o)]) / std::sqrt(double(var[size_t(o)]) + double(kNormEps)));
      for (int64_t i = 0; i < per; i++) w[size_t(o * per + i)] *= scale;
      b[size_t(o)] = (b[size_t(o)] - mean[size_t(o)]) * scale + beta[size_t(o)];
    }
    Conv c;
    c.w = upload(w, wshape);
    c.b = upload(b, Shape{C});
    c.padding = padding;
    return c;
  }
};

}  // namespace

DcaeDecoder::DcaeDecoder(Engine& e, std::shared_ptr<io::Checkpoint> ck, const DcaeConfig& cfg) : cfg_(cfg), g_(e) {
  Loader L{e, ck, WeightBinder(e, ck, DType::F32), g_};
  const int n = int(cfg.stages.size());
  if (n < 1) fail(code::kBadConfig, "the DC-AE config has no decoder stages");
  const int64_t d = cfg.head_dim, lat = cfg.latent_channels, top = cfg.stages[size_t(n - 1)].channels;
  auto need_relu6 = [&](DcaeAct a, int64_t C) {
    if (a != DcaeAct::Relu6 || relu6_shift_.count(C)) return;
    Conv s;
    s.w = L.upload(std::vector<float>(size_t(C), 1.f), Shape{C, 1, 1, 1});
    s.b = L.upload(std::vector<float>(size_t(C), -6.f), Shape{C});
    s.groups = int(C);
    relu6_shift_[C] = s;
  };
  auto up_block = [&](const std::string& p, int64_t cin, int64_t cout, bool shortcut) {
    UpBlock u;
    u.conv = L.conv(p + ".conv", cfg.interpolate ? cout : cout * 4, cin, 3, true);
    u.shortcut = shortcut;
    u.repeats = cout * 4 / cin;
    return u;
  };

  conv_in_ = L.conv("decoder.conv_in", top, lat, 3, true);
  stages_.resize(size_t(n));
  for (int i = 0; i < n; i++) {
    const DcaeStage& s = cfg.stages[size_t(i)];
    Stage& st = stages_[size_t(i)];
    const int64_t c = s.channels;
    const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
    int j = 0;
    if (i < n - 1 && s.layers > 0) {
      st.has_up = true;
      st.up = up_block(p + std::to_string(j++), cfg.stages[size_t(i + 1)].channels, c, true);
    }
    for (int l = 0; l < s.layers; l++, j++) {
      const std::string q = p + std::to_string(j) + ".";
      if (s.block == DcaeBlock::Res) {
        ResBlock b;
        b.act = s.act;
        need_relu6(s.act, c);
        b.conv1 = L.conv(q + "conv1", c, c, 3, true);
        if (s.batch_norm) {
          b.conv2 = L.conv_bn(q + "conv2.weight", Shape{c, c, 3, 3}, nullptr, q + "norm", 1);
        } else {
          b.conv2 = L.conv(q + "conv2", c, c, 3, false);
          b.norm_w = L.wb.small(q + "norm.weight", Shape{c});
          b.norm_b = L.wb.small(q + "norm.bias", Shape{c});
        }
        st.res.push_back(std::move(b));
      } else {
        const int64_t heads = c / d, inner = heads * d, m = int64_t(s.multiscales.size());
        const std::string a = q + "attn.";
        ViTBlock b;
        auto proj = [&](const char* name) { return g_.view(L.wb.big(a + name + ".weight", Shape{inner, c}), Shape{inner, c, 1, 1}); };
        b.qkv.w = g_.concat(g_.concat(proj("to_q"), proj("to_k"), 0), proj("to_v"), 0);
        for (int64_t k = 0; k < m; k++) {
          const std::string ms = a + "to_qkv_multiscale." + std::to_string(k) + ".";
          const int ks = s.multiscales[size_t(k)];
          b.multiscale.emplace_back(L.conv(ms + "proj_in", 3 * inner, 3 * inner, ks, false, int(3 * inner)),
                                    L.conv(ms + "proj_out", 3 * inner, 3 * inner, 1, false, int(3 * heads)));
        }
        const Shape out_shape{c, inner * (1 + m), 1, 1};
        if (s.batch_norm) {
          b.to_out = L.conv_bn(a + "to_out.weight", Shape{c, inner * (1 + m)}, nullptr, a + "norm_out", 0);
          b.to_out.w = g_.view(b.to_out.w, out_shape);
        } else {
          b.to_out.w = g_.view(L.wb.big(a + "to_out.weight", Shape{c, inner * (1 + m)}), out_shape);
          b.norm_w = L.wb.small(a + "norm_out.weight", Shape{c});
          b.norm_b = L.wb.small(a + "norm_out.bias", Shape{c});
        }
        const std::string f = q + "conv_out.";
        const int64_t hid = kGluExpand * c;
        b.inverted = L.conv(f + "conv_inverted", 2 * hid, c, 1, true);
        b.depth = L.conv(f + "conv_depth", 2 * hid, 2 * hid, 3, true, int(2 * hid));
        b.point = L.conv(f + "conv_point", c, hid, 1, false);
        b.glu_norm_w = L.wb.small(f + "norm.weight", Shape{c});
        b.glu_norm_b = L.wb.small(f + "norm.bias", Shape{c});
        st.vit.push_back(std::move(b));
      }
    }
  }
  const int64_t c0 = cfg.stages[0].layers > 0 ? cfg.stages[0].channels : cfg.stages[1].channels;
  norm_out_w_ = L.wb.small("decoder.norm_out.weight", Shape{c0});
  norm_out_b_ = L.wb.small("decoder.norm_out.bias", Shape{c0});
  need_relu6(cfg.conv_act, c0);
  conv_out_up_ = cfg.stages[0].layers == 0;
  if (conv_out_up_) conv_out_block_ = up_block("decoder.conv_out", c0, cfg.out_channels, false);
  else conv_out_ = L.conv("decoder.conv_out", cfg.out_channels, c0, 3, true);
}

Tensor DcaeDecoder::act(const Tensor& x, DcaeAct a) {
  if (a != DcaeAct::Relu6) return g_.act(x, a);
  return g_.act(x, a, &relu6_shift_.at(x.shape[1]));
}

Tensor DcaeDecoder::up_block(const Tensor& x, const UpBlock& u) {
  Tensor y = cfg_.interpolate ? g_.conv(g_.upsample_nearest(x, 2), u.conv) : g_.pixel_shuffle(g_.conv(x, u.conv), 2);
  if (u.shortcut) y = g_.add(y, g_.pixel_shuffle(g_.repeat_channels(x, u.repeats), 2));
  return y;
}

Tensor DcaeDecoder::res_block(const Tensor& x, const ResBlock& b) {
  Tensor h = g_.conv(act(g_.conv(x, b.conv1), b.act), b.conv2);
  if (b.norm_w.buf) h = g_.rms_norm_channels(h, b.norm_w, b.norm_b, kNormEps);
  return g_.add(h, x);
}

Tensor DcaeDecoder::vit_block(const Tensor& x, const ViTBlock& b) {
  // LiteMLA: q|k|v, then each multi-scale aggregate of them, heads of 3d consecutive channels
  Tensor qkv = g_.conv(x, b.qkv);
  Tensor all = qkv;
  for (const auto& [in, out] : b.multiscale) all = g_.concat(all, g_.conv(g_.conv(qkv, in), out), 1);
  Tensor o = g_.conv(g_.relu_linear_attention(all, cfg_.head_dim, kAttentionEps), b.to_out);
  if (b.norm_w.buf) o = g_.rms_norm_channels(o, b.norm_w, b.norm_b, kNormEps);
  Tensor h = g_.add(o, x);
  // GLUMBConv: 1x1 expand + SiLU -> depthwise 3x3 -> y * silu(gate) -> 1x1 -> RMSNorm, + h
  Tensor y = g_.conv(g_.silu(g_.conv(h, b.inverted)), b.depth);
  const int64_t hid = y.shape[1] / 2;
  Tensor glu = g_.swiglu(g_.slice(y, 1, hid, hid), g_.slice(y, 1, 0, hid));
  return g_.add(g_.rms_norm_channels(g_.conv(glu, b.point), b.glu_norm_w, b.glu_norm_b, kNormEps), h);
}

Tensor DcaeDecoder::decode(const Tensor& z, DcaeTrace* trace) {
  const int64_t lat = cfg_.latent_channels;
  if (z.dtype != DType::F32 || z.shape.ndim != 4 || z.shape[1] != lat || z.shape[0] < 1 || z.shape[2] < 1 || z.shape[3] < 1)
    fail(code::kShape, "decode: the latent must be f32 [B, " + std::to_string(lat) + ", h, w], got " + z.desc());
  const int n = int(stages_.size());
  // the decoder's own input is x / scaling_factor; as a product with the reciprocal rounded once
  // to float, as the TypeScript pipeline computed it before the decoder owned its scaling
  const Tensor zs = g_.axpby(float(1.0 / double(cfg_.scaling_factor)), z, 0.f, z);
  Tensor x = g_.conv(zs, conv_in_);
  if (cfg_.in_shortcut) x = g_.add(x, g_.repeat_channels(zs, cfg_.stages[size_t(n - 1)].channels / lat));
  if (trace) {
    trace->conv_in = x;
    trace->stages.assign(size_t(n), Tensor{});
  }
  for (int i = n - 1; i >= 0; i--) {
    const Stage& st = stages_[size_t(i)];
    if (st.has_up) x = up_block(x, st.up);
    for (const ResBlock& b : st.res) x = res_block(x, b);
    for (const ViTBlock& b : st.vit) x = vit_block(x, b);
    if (trace) trace->stages[size_t(i)] = x;
  }
  x = act(g_.rms_norm_channels(x, norm_out_w_, norm_out_b_, kNormEps), cfg_.conv_act);
  return conv_out_up_ ? up_block(x, conv_out_block_) : g_.conv(x, conv_out_);
}

}  // namespace latte::model
