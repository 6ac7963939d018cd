// The generation stream's config.json (docs/checkpoint-format.md section 2), parsed (by
// model/config_reader.h) and checked: anything the engine cannot run is an E_BAD_CONFIG error
// naming the key.
#pragma once
#include <array>
#include <cstdint>
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
  int tokens() const { return (latent_h / patch_size) * (latent_w / patch_size); }
  // Image token n (row-major over the patch grid) after a P-token prompt sits at M-RoPE positions
  // (P, P + row, P + col). Generator::positions() places the tokens with it and prompt_room()
  // bounds prompts with it, so the check and the placement cannot drift apart.
  std::array<int64_t, 3> image_position(int64_t prompt_len, int64_t n) const;
  // The longest prompt whose image tokens all sit below max_positions (the VLM's context).
  int64_t prompt_room(int64_t max_positions) const;
  // E_ARG when a prompt of prompt_len tokens leaves no room for the image tokens.
  void check_prompt(int64_t prompt_len, int64_t max_positions) const;
  static GeneratorConfig parse(const std::string& json_text, const std::string& where = "generator/config.json");
};

}  // namespace latte::model
