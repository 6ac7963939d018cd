// The DC-AE decoder (diffusers AutoencoderDC, decoder only) as tensor algebra over the engine's
// ops. Weights are bound by their diffusers names ("decoder.conv_in.weight",
// "decoder.up_blocks.{i}.{j}.*", "decoder.norm_out.*", "decoder.conv_out.*") when the model is
// built, every name and shape checked first, and kept in f32. BatchNorm2d (inference) is folded
// into the convolution before it at load.
//
// Shapes (PyTorch order): latent [B, latent_channels, h, w] f32, as the flow makes it (decode
// divides it by the config's scaling_factor) -> image [B, in_channels, h * factor, w * factor],
// roughly in [-1, 1].
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "model/dcae_config.h"
#include "model/dcae_graph.h"

namespace latte::model {

// Intermediate results of one decode, for parity checks.
struct DcaeTrace {
  Tensor conv_in;               // conv_in(x / scaling_factor) (+ the channel-repeat shortcut)
  std::vector<Tensor> stages;   // stages[i]: the output of up_blocks[i] (run deepest first)
};

class DcaeDecoder {
 public:
  DcaeDecoder(Engine& e, std::shared_ptr<io::Checkpoint> ck, const DcaeConfig& cfg);
  const DcaeConfig& config() const { return cfg_; }

  Tensor decode(const Tensor& z, DcaeTrace* trace = nullptr);

 private:
  struct UpBlock {
    Conv conv;
    bool shortcut = true;
    int64_t repeats = 1;  // the shortcut's channel repeat: out * 4 / in
  };
  // ResBlock: conv1 -> act -> conv2 -> norm, + x. A BatchNorm is folded into conv2.
  struct ResBlock {
    Conv conv1, conv2;
    Tensor norm_w, norm_b;  // RMSNorm; empty when folded
    DcaeAct act = DcaeAct::Silu;
  };
  // EfficientViTBlock: LiteMLA then GLUMBConv. q/k/v and to_out are 1x1 convolutions (the same
  // linear maps over channel-last pixels); a BatchNorm norm_out is folded into to_out.
  struct ViTBlock {
    Conv qkv;
    std::vector<std::pair<Conv, Conv>> multiscale;  // depthwise k x k, grouped 1x1
    Conv to_out;
    Tensor norm_w, norm_b;  // empty when folded
    Conv inverted, depth, point;
    Tensor glu_norm_w, glu_norm_b;
  };
  struct Stage {
    bool has_up = false;
    UpBlock up;
    std::vector<ResBlock> res;
    std::vector<ViTBlock> vit;
  };

  Tensor up_block(const Tensor& x, const UpBlock& u);
  Tensor res_block(const Tensor& x, const ResBlock& b);
  Tensor vit_block(const Tensor& x, const ViTBlock& b);
  Tensor act(const Tensor& x, DcaeAct a);

  DcaeConfig cfg_;
  ImageGraph g_;
  Conv conv_in_;
  std::vector<Stage> stages_;
  Tensor norm_out_w_, norm_out_b_;
  bool conv_out_up_ = false;  // layers[0] == 0: conv_out is an up block without shortcut
  Conv conv_out_;
  UpBlock conv_out_block_;
  std::map<int64_t, Conv> relu6_shift_;  // per channel count, for relu6
};

}  // namespace latte::model
