// The generation stream's config.json (docs/checkpoint-format.md section 2), parsed and checked:
// anything the engine cannot run is an E_BAD_CONFIG error naming the key.
#pragma once
#include <string>
#include <vector>

namespace latte::model {

struct GeneratorConfig {
  int hidden_size = 0, num_heads = 0, num_kv_heads = 0, intermediate_size = 0, num_layers = 0;
  int latent_channels = 0, latent_h = 0, latent_w = 0, patch_size = 1, num_groups = 4;
  std::vector<double> boundaries;  // K + 1 increasing times from 0 to 1 (uniform k/K by default)
  float rms_norm_eps = 1e-6f, rope_theta = 1e6f;
  int mrope_section[3] = {16, 24, 24};
  int time_embed_dim = 256;
  float time_scale = 1000.f, time_max_period = 10000.f;
  // sampler defaults, for the TypeScript orchestration
  float guidance_scale = 4.f, time_shift = 1.f;
  // optional: one CFG weight per expert group (time order), the default over guidance_scale
  std::vector<float> guidance_per_group;
  int num_steps = 40;
  std::string sampler = "euler", prompt_template, null_prompt;

  int head_dim() const { return hidden_size / num_heads; }
  int layers_per_group() const { return num_layers / num_groups; }
  int tokens() const { return (latent_h / patch_size) * (latent_w / patch_size); }
  static GeneratorConfig parse(const std::string& json_text, const std::string& where = "generator/config.json");
};

}  // namespace latte::model
