#include "model/qwen2vl_config.h"

#include "core/error.h"
#include "model/config_reader.h"

namespace latte::model {

using nlohmann::json;

Qwen2VLConfig Qwen2VLConfig::parse(const std::string& text, const std::string& where) {
  const ConfigReader r(text, where);
  r.expect("model_type", "qwen2_vl");
  const json* tc = r.find("text_config");
  const json* vc = r.find("vision_config");
  if (!vc || !vc->is_object()) r.bad("vision_config", "is missing");
  // transformers 5 nests the text fields under text_config; older configs keep them at the top
  const ConfigReader text_r = r.within({tc, &r.root()});

  Qwen2VLConfig c;
  TextConfig& t = c.text;
  t.hidden_size = text_r.integer("hidden_size", 8, 1 << 16);
  t.intermediate_size = text_r.integer("intermediate_size", 1, 1 << 18);
  t.num_layers = text_r.integer("num_hidden_layers", 1, 1024);
  t.num_heads = text_r.integer("num_attention_heads", 1, 1024);
  t.num_kv_heads = text_r.integer("num_key_value_heads", 1, 1024, t.num_heads);
  t.vocab_size = text_r.integer("vocab_size", 1, 1 << 24);
  t.max_positions = text_r.integer("max_position_embeddings", 1, 1 << 24, 32768);
  t.rms_norm_eps = text_r.number("rms_norm_eps", 1e-6f, Interval::positive(1.0));
  // transformers 5 moved rope_theta (and mrope_section) into rope_parameters
  const json* rp = text_r.find("rope_parameters");
  t.rope_theta = r.within({tc, &r.root(), rp}).number("rope_theta", 10000.f, Interval::positive(1e12));
  // a tie_word_embeddings that is not a boolean reads as false (as transformers' truthiness of absent)
  const json* tie = text_r.find("tie_word_embeddings");
  t.tie_word_embeddings = tie && tie->is_boolean() && tie->get<bool>();
  if (t.hidden_size % t.num_heads) r.bad("hidden_size", "is not a multiple of num_attention_heads");
  if (t.num_heads % t.num_kv_heads) r.bad("num_attention_heads", "is not a multiple of num_key_value_heads");
  if (t.head_dim() % 2) r.bad("hidden_size / num_attention_heads", "must be even for RoPE");
  text_r.expect("hidden_act", "silu");

  const json* rs = text_r.find("rope_scaling");
  if (!rs) rs = rp;
  const json* sec = rs ? r.within({rs}).find("mrope_section") : nullptr;
  if (!sec || !sec->is_array() || sec->size() != 3) r.bad("rope_scaling.mrope_section", "must list 3 integers (t, h, w)");
  int sum = 0;
  for (int i = 0; i < 3; i++) {
    // each section is at least one frequency (the rope op needs it) and at most all of them
    t.mrope_section[i] = r.as_int((*sec)[size_t(i)], "rope_scaling.mrope_section[" + std::to_string(i) + "]", 1, t.head_dim() / 2);
    sum += t.mrope_section[i];
  }
  if (sum != t.head_dim() / 2) r.bad("rope_scaling.mrope_section", "sums to " + std::to_string(sum) + " but head_dim / 2 is " + std::to_string(t.head_dim() / 2));

  const ConfigReader ids_r = r.within({&r.root(), tc});
  c.image_token_id = ids_r.integer("image_token_id", 0, t.vocab_size - 1);
  c.video_token_id = ids_r.integer("video_token_id", -1, t.vocab_size - 1, -1);
  c.vision_start_token_id = ids_r.integer("vision_start_token_id", 0, t.vocab_size - 1);
  c.vision_end_token_id = ids_r.integer("vision_end_token_id", -1, t.vocab_size - 1, -1);

  const ConfigReader vis_r = r.within({vc});
  VisionConfig& v = c.vision;
  v.depth = vis_r.integer("depth", 1, 1024);
  v.embed_dim = vis_r.integer("embed_dim", 4, 1 << 16);
  v.num_heads = vis_r.integer("num_heads", 1, 1024);
  v.mlp_hidden = v.embed_dim * vis_r.integer("mlp_ratio", 1, 64);
  v.out_hidden = vis_r.integer("hidden_size", 1, 1 << 16);
  v.in_channels = vis_r.find("in_channels") ? vis_r.integer("in_channels", 1, 16) : vis_r.integer("in_chans", 1, 16, 3);
  v.patch_size = vis_r.integer("patch_size", 1, 1024, 14);
  v.temporal_patch_size = vis_r.integer("temporal_patch_size", 1, 16, 2);
  v.spatial_merge_size = vis_r.integer("spatial_merge_size", 1, 16, 2);
  // the blocks' MLP activation, OpAttrs::gelu numbering
  v.gelu = r.as_choice(vis_r.string("hidden_act", "quick_gelu"), "vision_config.hidden_act", ConfigReader::Names<int>{{"quick_gelu", 0}, {"gelu", 2}});
  if (v.embed_dim % v.num_heads) r.bad("vision_config.embed_dim", "is not a multiple of num_heads");
  if (v.head_dim() % 4) r.bad("vision_config.embed_dim / num_heads", "must be a multiple of 4 for the 2-D RoPE");
  if (v.out_hidden != t.hidden_size) r.bad("vision_config.hidden_size", "must equal the decoder's hidden_size " + std::to_string(t.hidden_size));
  return c;
}

}  // namespace latte::model
