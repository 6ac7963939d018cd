#include "model/generator_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace latte::model {

using nlohmann::json;

namespace {
constexpr size_t kMaxConfigString = 4096;
// CFG weights far past any useful value (images saturate long before) only overflow the update
constexpr double kMaxGuidance = 1000;
}  // namespace

GeneratorConfig GeneratorConfig::parse(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail(code::kBadConfig, where + ": not valid JSON (" + e.what() + ")");
  }
  auto bad = [&](const std::string& key, const std::string& why) { fail(code::kBadConfig, where + ": " + key + " " + why); };
  if (!j.is_object()) bad("the document", "must be a JSON object");
  auto integer = [&](const char* key, int lo, int hi, const int* dflt) {
    if (!j.contains(key) || j[key].is_null()) {
      if (!dflt) bad(key, "is missing");
      return *dflt;
    }
    if (!j[key].is_number_integer()) bad(key, "must be an integer");
    int64_t v = j[key].get<int64_t>();
    if (v < lo || v > hi) bad(key, "= " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(v);
  };
  // A number in [lo, hi] (lo excluded when open_lo): float-representable and inside what the
  // model's math tolerates, so a bad value is refused here instead of failing every request.
  auto number = [&](const char* key, float dflt, double lo, double hi, bool open_lo = false) {
    if (!j.contains(key) || j[key].is_null()) return dflt;
    const double x = j[key].is_number() ? j[key].get<double>() : NAN;
    if (!(open_lo ? x > lo : x >= lo) || !(x <= hi) || (x != 0 && !std::isnormal(float(x))))
      bad(key, "must be a number in " + std::string(open_lo ? "(" : "[") + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return float(x);
  };
  auto string = [&](const char* key, const std::string& dflt) {
    if (!j.contains(key) || j[key].is_null()) return dflt;
    if (!j[key].is_string()) bad(key, "must be a string");
    // a prompt template or null prompt is encoded for every request: keep it prompt-sized
    if (j[key].get_ref<const std::string&>().size() > kMaxConfigString) bad(key, "is longer than " + std::to_string(kMaxConfigString) + " bytes");
    return j[key].get<std::string>();
  };
  auto latent_dim = [&](const json& v) {
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 4096) bad("latent_size", "must be [h, w] with integers in [1, 4096]");
    return int(v.get<int64_t>());
  };
  GeneratorConfig c;
  if (string("format", "latte-flow-generator") != "latte-flow-generator") bad("format", "must be \"latte-flow-generator\"");
  const int one = 1, four = 4, d256 = 256, steps = 40;
  if (integer("format_version", 1, 1 << 20, &one) > 1) bad("format_version", "is newer than this engine reads (1)");
  c.hidden_size = integer("hidden_size", 8, 1 << 16, nullptr);
  c.num_heads = integer("num_attention_heads", 1, 1024, nullptr);
  c.num_kv_heads = integer("num_key_value_heads", 1, 1024, nullptr);
  c.intermediate_size = integer("intermediate_size", 1, 1 << 18, nullptr);
  c.num_layers = integer("num_layers", 1, 1024, nullptr);
  c.latent_channels = integer("latent_channels", 1, 4096, nullptr);
  if (!j.contains("latent_size") || !j["latent_size"].is_array() || j["latent_size"].size() != 2 || !j["latent_size"][0].is_number_integer() || !j["latent_size"][1].is_number_integer())
    bad("latent_size", "must be [h, w]");
  c.latent_h = latent_dim(j["latent_size"][0]);
  c.latent_w = latent_dim(j["latent_size"][1]);
  c.patch_size = integer("patch_size", 1, 64, &one);
  c.num_groups = integer("num_groups", 1, 1024, &four);
  if (c.latent_h <= 0 || c.latent_w <= 0 || c.latent_h % c.patch_size || c.latent_w % c.patch_size) bad("latent_size", "must be positive multiples of patch_size");
  if (c.hidden_size % c.num_heads) bad("hidden_size", "is not a multiple of num_attention_heads");
  if (c.num_heads % c.num_kv_heads) bad("num_attention_heads", "is not a multiple of num_key_value_heads");
  if (c.num_layers % c.num_groups) bad("num_layers", "(" + std::to_string(c.num_layers) + ") is not a multiple of num_groups (" + std::to_string(c.num_groups) + ")");
  if (j.contains("group_boundaries") && !j["group_boundaries"].is_null()) {
    const json& b = j["group_boundaries"];
    if (!b.is_array() || int(b.size()) != c.num_groups + 1) bad("group_boundaries", "must list num_groups + 1 times");
    for (auto& x : b) {
      if (!x.is_number()) bad("group_boundaries", "must hold numbers");
      c.boundaries.push_back(x.get<double>());
    }
    bool ok = c.boundaries.front() == 0.0 && c.boundaries.back() == 1.0;
    for (size_t i = 1; i < c.boundaries.size(); i++) ok = ok && c.boundaries[i - 1] < c.boundaries[i];
    if (!ok) bad("group_boundaries", "must increase from 0 to 1");
  } else {
    for (int k = 0; k <= c.num_groups; k++) c.boundaries.push_back(double(k) / c.num_groups);
  }
  c.rms_norm_eps = number("rms_norm_eps", 1e-6f, 0, 1, true);
  c.rope_theta = number("rope_theta", 1e6f, 0, 1e12, true);
  if (j.contains("mrope_section")) {
    const json& s = j["mrope_section"];
    if (!s.is_array() || s.size() != 3) bad("mrope_section", "must list 3 integers");
    // each checked on its 64-bit value first, so a huge entry cannot wrap the sum
    for (int i = 0; i < 3; i++)
      c.mrope_section[i] = s[i].is_number_integer() && s[i].get<int64_t>() >= 1 && s[i].get<int64_t>() <= c.head_dim() / 2 ? int(s[i].get<int64_t>()) : -1;
  }
  if (c.mrope_section[0] < 1 || c.mrope_section[1] < 1 || c.mrope_section[2] < 1 || c.mrope_section[0] + c.mrope_section[1] + c.mrope_section[2] != c.head_dim() / 2)
    bad("mrope_section", "must be 3 positive integers summing to head_dim / 2 = " + std::to_string(c.head_dim() / 2));
  c.time_embed_dim = integer("time_embed_dim", 2, 1 << 16, &d256);
  if (c.time_embed_dim % 2) bad("time_embed_dim", "must be even");
  c.time_scale = number("time_scale", 1000.f, 0, 1e6, true);
  c.time_max_period = number("time_max_period", 10000.f, 1, 1e12);
  c.guidance_scale = number("guidance_scale", 4.f, -kMaxGuidance, kMaxGuidance);
  if (j.contains("guidance_per_group") && !j["guidance_per_group"].is_null()) {
    const json& g = j["guidance_per_group"];
    if (!g.is_array() || int(g.size()) != c.num_groups) bad("guidance_per_group", "must list one number per group (" + std::to_string(c.num_groups) + ")");
    for (auto& w : g) {
      if (!w.is_number() || !(std::fabs(w.get<double>()) <= kMaxGuidance)) bad("guidance_per_group", "must list numbers in [-" + std::to_string(int(kMaxGuidance)) + ", " + std::to_string(int(kMaxGuidance)) + "]");
      c.guidance_per_group.push_back(w.get<float>());
    }
  }
  c.num_steps = integer("num_steps", 1, 10000, &steps);  // generateImage's own step cap
  c.sampler = string("sampler", "euler");
  if (c.sampler != "euler" && c.sampler != "heun") bad("sampler", "must be \"euler\" or \"heun\"");
  c.time_shift = number("time_shift", 1.f, 0, 1e6, true);
  c.prompt_template = string("prompt_template", "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n");
  if (c.prompt_template.find("{prompt}") == std::string::npos) bad("prompt_template", "must contain {prompt}");
  c.null_prompt = string("null_prompt", "");
  return c;
}

}  // namespace latte::model
