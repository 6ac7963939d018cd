// DC-AE's config.json (diffusers AutoencoderDC layout), the decoder's part, parsed once (by
// model/config_reader.h) and checked: anything the engine cannot run is an E_BAD_CONFIG error
// naming the field, before any weight is touched. Per-stage fields may be one string for every
// stage or a list per stage.
#pragma once
#include <string>
#include <vector>

namespace latte::model {

enum class DcaeAct { Relu, Relu6, Silu, Gelu };
enum class DcaeBlock { Res, EfficientViT };

// One decoder stage, as stored: index 0 is the shallowest (full resolution), run last.
struct DcaeStage {
  int channels = 0;  // decoder_block_out_channels[i]
  int layers = 0;    // decoder_layers_per_block[i]
  DcaeBlock block = DcaeBlock::Res;
  bool batch_norm = false;  // decoder_norm_types[i]: batch_norm (else rms_norm)
  DcaeAct act = DcaeAct::Silu;  // decoder_act_fns[i] (ResBlock only)
  std::vector<int> multiscales;  // decoder_qkv_multiscales[i] (EfficientViTBlock only): kernel sizes
};

struct DcaeConfig {
  int latent_channels = 0;
  int out_channels = 3;  // in_channels: the image's channels
  int head_dim = 32;     // attention_head_dim
  std::vector<DcaeStage> stages;
  bool interpolate = false;  // upsample_block_type == "interpolate" (else pixel_shuffle)
  bool in_shortcut = true;   // decoder_in_shortcut
  DcaeAct conv_act = DcaeAct::Relu;  // decoder_conv_act_fn
  float scaling_factor = 1.f;  // decode() divides the latent by it

  // image side / latent side
  int factor() const { return 1 << (int(stages.size()) - 1); }

  static DcaeConfig parse(const std::string& json_text, const std::string& where = "config.json");
};

}  // namespace latte::model
