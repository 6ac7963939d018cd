// Qwen2-VL's config.json (Hugging Face layout, legacy top-level text fields or transformers 5's
// "text_config"), parsed once (by model/config_reader.h) and checked: anything the engine cannot
// run is an E_BAD_CONFIG error naming the field, before any weight is touched.
#pragma once
#include <string>

namespace latte::model {

struct VisionConfig {
  int depth = 0, embed_dim = 0, num_heads = 0, mlp_hidden = 0;
  int out_hidden = 0;  // the merger's output width: the decoder's hidden_size
  int in_channels = 3, patch_size = 14, temporal_patch_size = 2, spatial_merge_size = 2;
  int gelu = 0;  // the blocks' MLP activation, OpAttrs::gelu numbering (0 quick, 2 erf)
  int head_dim() const { return embed_dim / num_heads; }
  int patch_features() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
};

struct TextConfig {
  int hidden_size = 0, intermediate_size = 0, num_layers = 0, num_heads = 0, num_kv_heads = 0;
  int vocab_size = 0, max_positions = 0;
  float rms_norm_eps = 1e-6f, rope_theta = 10000.f;
  int mrope_section[3] = {0, 0, 0};
  bool tie_word_embeddings = false;
  int head_dim() const { return hidden_size / num_heads; }
};

struct Qwen2VLConfig {
  TextConfig text;
  VisionConfig vision;
  int image_token_id = -1, video_token_id = -1, vision_start_token_id = -1, vision_end_token_id = -1;

  static Qwen2VLConfig parse(const std::string& json_text, const std::string& where = "config.json");
};

}  // namespace latte::model
