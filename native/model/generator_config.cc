#include "model/generator_config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/config_reader.h"

namespace latte::model {

using nlohmann::json;

namespace {
// CFG weights far past any useful value (images saturate long before) only overflow the update
constexpr double kMaxGuidance = 1000;
}  // namespace

GeneratorConfig GeneratorConfig::parse(const std::string& text, const std::string& where) {
  const ConfigReader r(text, where);
  GeneratorConfig c;
  r.expect("format", "latte-flow-generator");
  if (r.integer("format_version", 1, 1 << 20, 1) > 1) r.bad("format_version", "is newer than this engine reads (1)");
  c.hidden_size = r.integer("hidden_size", 8, 1 << 16);
  c.num_heads = r.integer("num_attention_heads", 1, 1024);
  c.num_kv_heads = r.integer("num_key_value_heads", 1, 1024);
  c.intermediate_size = r.integer("intermediate_size", 1, 1 << 18);
  c.num_layers = r.integer("num_layers", 1, 1024);
  c.latent_channels = r.integer("latent_channels", 1, 4096);
  const json* size = r.find("latent_size");
  if (!size || !size->is_array() || size->size() != 2) r.bad("latent_size", "must be [h, w]");
  c.latent_h = r.as_int((*size)[0], "latent_size[0]", 1, 4096);
  c.latent_w = r.as_int((*size)[1], "latent_size[1]", 1, 4096);
  c.patch_size = r.integer("patch_size", 1, 64, 1);
  c.num_groups = r.integer("num_groups", 1, 1024, 4);
  if (c.latent_h % c.patch_size || c.latent_w % c.patch_size) r.bad("latent_size", "must be positive multiples of patch_size");
  if (c.hidden_size % c.num_heads) r.bad("hidden_size", "is not a multiple of num_attention_heads");
  if (c.num_heads % c.num_kv_heads) r.bad("num_attention_heads", "is not a multiple of num_key_value_heads");
  if (c.num_layers % c.num_groups) r.bad("num_layers", "(" + std::to_string(c.num_layers) + ") is not a multiple of num_groups (" + std::to_string(c.num_groups) + ")");
  if (const json* b = r.find("group_boundaries")) {
    if (!b->is_array() || int(b->size()) != c.num_groups + 1) r.bad("group_boundaries", "must list num_groups + 1 times");
    for (size_t i = 0; i < b->size(); i++) c.boundaries.push_back(r.as_number((*b)[i], "group_boundaries[" + std::to_string(i) + "]", {0, 1}));
    bool ok = c.boundaries.front() == 0.0 && c.boundaries.back() == 1.0;
    for (size_t i = 1; i < c.boundaries.size(); i++) ok = ok && c.boundaries[i - 1] < c.boundaries[i];
    if (!ok) r.bad("group_boundaries", "must increase from 0 to 1");
  } else {
    for (int k = 0; k <= c.num_groups; k++) c.boundaries.push_back(double(k) / c.num_groups);
  }
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6f, Interval::positive(1));
  c.rope_theta = r.number("rope_theta", 1e6f, Interval::positive(1e12));
  if (const json* s = r.find("mrope_section")) {
    if (!s->is_array() || s->size() != 3) r.bad("mrope_section", "must list 3 integers");
    for (int i = 0; i < 3; i++) c.mrope_section[i] = r.as_int((*s)[size_t(i)], "mrope_section[" + std::to_string(i) + "]", 1, std::max(1, c.head_dim() / 2));
  }
  if (c.mrope_section[0] + c.mrope_section[1] + c.mrope_section[2] != c.head_dim() / 2)
    r.bad("mrope_section", "must be 3 positive integers summing to head_dim / 2 = " + std::to_string(c.head_dim() / 2));
  c.time_embed_dim = r.integer("time_embed_dim", 2, 1 << 16, 256);
  if (c.time_embed_dim % 2) r.bad("time_embed_dim", "must be even");
  c.time_scale = r.number("time_scale", 1000.f, Interval::positive(1e6));
  c.time_max_period = r.number("time_max_period", 10000.f, {1, 1e12});
  c.guidance_scale = r.number("guidance_scale", 4.f, {-kMaxGuidance, kMaxGuidance});
  if (const json* g = r.find("guidance_per_group")) {
    if (!g->is_array() || int(g->size()) != c.num_groups) r.bad("guidance_per_group", "must list one number per group (" + std::to_string(c.num_groups) + ")");
    for (size_t i = 0; i < g->size(); i++) c.guidance_per_group.push_back(float(r.as_number((*g)[i], "guidance_per_group[" + std::to_string(i) + "]", {-kMaxGuidance, kMaxGuidance})));
  }
  c.num_steps = r.integer("num_steps", 1, 10000, 40);  // generateImage's own step cap
  c.sampler = r.choice("sampler", "euler", ConfigReader::Names<const char*>{{"euler", "euler"}, {"heun", "heun"}});
  c.time_shift = r.number("time_shift", 1.f, Interval::positive(1e6));
  // a prompt template or null prompt is encoded for every request: the reader keeps strings prompt-sized
  c.prompt_template = r.string("prompt_template", "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n");
  if (c.prompt_template.find("{prompt}") == std::string::npos) r.bad("prompt_template", "must contain {prompt}");
  c.null_prompt = r.string("null_prompt", "");
  return c;
}

std::array<int64_t, 3> GeneratorConfig::image_position(int64_t prompt_len, int64_t n) const {
  const int64_t gw = latent_w / patch_size;
  return {prompt_len, prompt_len + n / gw, prompt_len + n % gw};
}

int64_t GeneratorConfig::prompt_room(int64_t max_positions) const {
  // the last image token (bottom right) takes the highest position on every axis
  const auto last = image_position(0, tokens() - 1);
  return max_positions - 1 - *std::max_element(last.begin(), last.end());
}

void GeneratorConfig::check_prompt(int64_t prompt_len, int64_t max_positions) const {
  const int64_t room = prompt_room(max_positions);
  if (prompt_len > room)
    fail(code::kArg, "the prompt is " + std::to_string(prompt_len) + " tokens (with the model's template); this model takes at most " + std::to_string(room));
}

}  // namespace latte::model
