// Op calls for image models (NCHW): convolutions, pixel shuffle, channel norms, activations and
// ReLU linear attention, on top of Graph (which has silu, axpby, concat, slice, swiglu, gelu).
// Like Graph's, each call only enqueues one op (or a few).
#pragma once
#include "model/dcae_config.h"
#include "model/graph.h"

namespace latte::model {

// A conv2d weight [Cout, Cin/groups, k, k] with its optional bias [Cout].
struct Conv {
  Tensor w, b;
  int padding = 0, groups = 1;
  bool has_bias() const { return bool(b.buf); }
};

class ImageGraph : public Graph {
 public:
  explicit ImageGraph(Engine& e) : Graph(e) {}

  Tensor conv(const Tensor& x, const Conv& c) {
    OpAttrs a;
    a.padding = c.padding;
    a.groups = c.groups;
    return op(Op::Conv2d, {&x, &c.w, c.has_bias() ? &c.b : nullptr}, a);
  }
  Tensor pixel_shuffle(const Tensor& x, int r) {
    OpAttrs a;
    a.factor = r;
    return op(Op::PixelShuffle, {&x}, a);
  }
  Tensor upsample_nearest(const Tensor& x, int r) {
    OpAttrs a;
    a.factor = r;
    return op(Op::UpsampleNearest, {&x}, a);
  }
  // RMSNorm over dim 1 of NCHW (diffusers' RMSNorm applied channel-last): x * rsqrt(mean_c x^2 + eps) * w + b
  Tensor rms_norm_channels(const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
    OpAttrs a;
    a.eps = eps;
    a.channels = true;
    return op(Op::RmsNorm, {&x, &w, b.buf ? &b : nullptr}, a);
  }
  Tensor relu(const Tensor& x) { return op(Op::Relu, {&x}); }
  // qkv [B, heads * 3d, H, W] (each head's consecutive 3d channels are its q, k, v) -> [B, heads * d, H, W]
  Tensor relu_linear_attention(const Tensor& qkv, int head_dim, float eps) {
    OpAttrs a;
    a.head_dim = head_dim;
    a.eps = eps;
    return op(Op::ReluLinearAttention, {&qkv}, a);
  }
  // torch's x.repeat_interleave(r, dim=1) on NCHW: every channel r times in a row. Built from
  // concats of [B, C, k, H*W] views (doubling, so log2(r) + popcount(r) copies).
  Tensor repeat_channels(const Tensor& x, int64_t r) {
    if (r == 1) return x;
    const int64_t B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    Tensor power = view(x, Shape{B, C, 1, H * W}), acc;
    for (int64_t k = r; k > 0; k >>= 1) {
      if (k & 1) acc = acc.buf ? concat(acc, power, 2) : power;
      if (k > 1) power = concat(power, power, 2);
    }
    return view(acc, Shape{B, C * r, H, W});
  }
  // relu6 needs `relu6_shift`: a depthwise 1x1 conv computing x - 6 (weights 1, bias -6); relu6(x)
  // = relu(x) - relu(x - 6), exact for x <= 12 and within half an ulp of x above.
  Tensor act(const Tensor& x, DcaeAct a, const Conv* relu6_shift = nullptr) {
    switch (a) {
      case DcaeAct::Relu: return relu(x);
      case DcaeAct::Silu: return silu(x);
      case DcaeAct::Gelu: return gelu(x, 2);  // nn.GELU(): the erf form
      case DcaeAct::Relu6:
        if (!relu6_shift) fail(code::kInternal, "relu6 without its shift");
        return axpby(1.f, relu(x), -1.f, relu(conv(x, *relu6_shift)));
    }
    fail(code::kInternal, "unknown activation");
  }
};

}  // namespace latte::model
