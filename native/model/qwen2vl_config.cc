#include "model/qwen2vl_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace latte::model {

using nlohmann::json;

namespace {

struct Reader {
  const std::string& where;
  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    fail(code::kBadConfig, where + ": " + field + " " + why);
  }
  // The first of `objs` that has `key` (transformers 5 nests text fields under text_config).
  const json* find(std::initializer_list<const json*> objs, const char* key) const {
    for (const json* o : objs)
      if (o && o->is_object() && o->contains(key) && !(*o)[key].is_null()) return &(*o)[key];
    return nullptr;
  }
  int integer(std::initializer_list<const json*> objs, const char* key, int lo, int hi, const int* dflt = nullptr) const {
    const json* v = find(objs, key);
    if (!v) {
      if (dflt) return *dflt;
      bad(key, "is missing");
    }
    if (!v->is_number_integer()) bad(key, "must be an integer");
    int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) bad(key, "= " + std::to_string(x) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(x);
  }
  // A number in (0, hi]: float-representable and inside what the model's math tolerates.
  float number(std::initializer_list<const json*> objs, const char* key, float dflt, double hi) const {
    const json* v = find(objs, key);
    if (!v) return dflt;
    if (!v->is_number()) bad(key, "must be a number");
    double x = v->get<double>();
    if (!(x > 0) || !(x <= hi) || !std::isnormal(float(x))) bad(key, "= " + v->dump() + " must be a positive number up to " + std::to_string(hi));
    return float(x);
  }
  std::string string(std::initializer_list<const json*> objs, const char* key, const std::string& dflt) const {
    const json* v = find(objs, key);
    if (!v) return dflt;
    if (!v->is_string()) bad(key, "must be a string");
    return v->get<std::string>();
  }
};

}  // namespace

Qwen2VLConfig Qwen2VLConfig::parse(const std::string& text, const std::string& where) {
  json root;
  try {
    root = json::parse(text);
  } catch (const std::exception& e) {
    fail(code::kBadConfig, where + ": not valid JSON (" + e.what() + ")");
  }
  Reader r{where};
  if (!root.is_object()) r.bad("the document", "must be a JSON object");
  std::string type = r.string({&root}, "model_type", "qwen2_vl");
  if (type != "qwen2_vl") r.bad("model_type", "is '" + type + "'; only 'qwen2_vl' is supported");
  const json* tc = root.contains("text_config") ? &root["text_config"] : nullptr;
  const json* vc = r.find({&root}, "vision_config");
  if (!vc || !vc->is_object()) r.bad("vision_config", "is missing");

  Qwen2VLConfig c;
  TextConfig& t = c.text;
  t.hidden_size = r.integer({tc, &root}, "hidden_size", 8, 1 << 16);
  t.intermediate_size = r.integer({tc, &root}, "intermediate_size", 1, 1 << 18);
  t.num_layers = r.integer({tc, &root}, "num_hidden_layers", 1, 1024);
  t.num_heads = r.integer({tc, &root}, "num_attention_heads", 1, 1024);
  t.num_kv_heads = r.integer({tc, &root}, "num_key_value_heads", 1, 1024, &t.num_heads);
  t.vocab_size = r.integer({tc, &root}, "vocab_size", 1, 1 << 24);
  const int max_pos = 32768;
  t.max_positions = r.integer({tc, &root}, "max_position_embeddings", 1, 1 << 24, &max_pos);
  t.rms_norm_eps = r.number({tc, &root}, "rms_norm_eps", 1e-6f, 1.0);
  // transformers 5 moved rope_theta (and mrope_section) into rope_parameters
  const json* rp = r.find({tc, &root}, "rope_parameters");
  t.rope_theta = r.number({tc, &root, rp}, "rope_theta", 10000.f, 1e12);
  const json* tie = r.find({tc, &root}, "tie_word_embeddings");
  t.tie_word_embeddings = tie && tie->is_boolean() ? tie->get<bool>() : false;
  if (t.hidden_size % t.num_heads) r.bad("hidden_size", "is not a multiple of num_attention_heads");
  if (t.num_heads % t.num_kv_heads) r.bad("num_attention_heads", "is not a multiple of num_key_value_heads");
  if (t.head_dim() % 2) r.bad("hidden_size / num_attention_heads", "must be even for RoPE");
  std::string act = r.string({tc, &root}, "hidden_act", "silu");
  if (act != "silu") r.bad("hidden_act", "is '" + act + "'; only 'silu' is supported");

  const json* rs = r.find({tc, &root}, "rope_scaling");
  if (!rs) rs = r.find({tc, &root}, "rope_parameters");
  const json* sec = rs ? r.find({rs}, "mrope_section") : nullptr;
  if (!sec || !sec->is_array() || sec->size() != 3) r.bad("rope_scaling.mrope_section", "must list 3 integers (t, h, w)");
  int sum = 0;
  for (int i = 0; i < 3; i++) {
    // each section is at least one frequency (the rope op needs it) and at most all of them,
    // checked on the 64-bit value so a huge entry cannot wrap the sum
    const json& x = (*sec)[i];
    if (!x.is_number_integer() || x.get<int64_t>() < 1 || x.get<int64_t>() > t.head_dim() / 2)
      r.bad("rope_scaling.mrope_section", "must hold 3 integers in [1, head_dim / 2 = " + std::to_string(t.head_dim() / 2) + "]");
    t.mrope_section[i] = int(x.get<int64_t>());
    sum += t.mrope_section[i];
  }
  if (sum != t.head_dim() / 2) r.bad("rope_scaling.mrope_section", "sums to " + std::to_string(sum) + " but head_dim / 2 is " + std::to_string(t.head_dim() / 2));

  c.image_token_id = r.integer({&root, tc}, "image_token_id", 0, t.vocab_size - 1);
  const int none = -1;
  c.video_token_id = r.integer({&root, tc}, "video_token_id", -1, t.vocab_size - 1, &none);
  c.vision_start_token_id = r.integer({&root, tc}, "vision_start_token_id", 0, t.vocab_size - 1);
  c.vision_end_token_id = r.integer({&root, tc}, "vision_end_token_id", -1, t.vocab_size - 1, &none);

  VisionConfig& v = c.vision;
  v.depth = r.integer({vc}, "depth", 1, 1024);
  v.embed_dim = r.integer({vc}, "embed_dim", 4, 1 << 16);
  v.num_heads = r.integer({vc}, "num_heads", 1, 1024);
  const int ratio = r.integer({vc}, "mlp_ratio", 1, 64, nullptr);
  v.mlp_hidden = v.embed_dim * ratio;
  v.out_hidden = r.integer({vc}, "hidden_size", 1, 1 << 16);
  const int three = 3, fourteen = 14, two = 2;
  v.in_channels = r.find({vc}, "in_channels") ? r.integer({vc}, "in_channels", 1, 16) : r.integer({vc}, "in_chans", 1, 16, &three);
  v.patch_size = r.integer({vc}, "patch_size", 1, 1024, &fourteen);
  v.temporal_patch_size = r.integer({vc}, "temporal_patch_size", 1, 16, &two);
  v.spatial_merge_size = r.integer({vc}, "spatial_merge_size", 1, 16, &two);
  std::string vact = r.string({vc}, "hidden_act", "quick_gelu");
  if (vact == "quick_gelu") v.gelu = 0;
  else if (vact == "gelu") v.gelu = 2;
  else r.bad("vision_config.hidden_act", "is '" + vact + "'; only 'quick_gelu' and 'gelu' are supported");
  if (v.embed_dim % v.num_heads) r.bad("vision_config.embed_dim", "is not a multiple of num_heads");
  if (v.head_dim() % 4) r.bad("vision_config.embed_dim / num_heads", "must be a multiple of 4 for the 2-D RoPE");
  if (v.out_hidden != t.hidden_size) r.bad("vision_config.hidden_size", "must equal the decoder's hidden_size " + std::to_string(t.hidden_size));
  return c;
}

}  // namespace latte::model
