#include "model/dcae_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace latte::model {

using nlohmann::json;

namespace {

struct Reader {
  const json& root;
  const std::string& where;
  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    fail(code::kBadConfig, where + ": " + field + " " + why);
  }
  const json* find(const char* key) const {
    return root.contains(key) && !root[key].is_null() ? &root[key] : nullptr;
  }
  int as_int(const json& v, const std::string& field, int lo, int hi) const {
    if (!v.is_number_integer()) bad(field, "must be an integer");
    int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) bad(field, "= " + std::to_string(x) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(x);
  }
  int integer(const char* key, int lo, int hi, const int* dflt = nullptr) const {
    const json* v = find(key);
    if (!v) {
      if (dflt) return *dflt;
      bad(key, "is missing");
    }
    return as_int(*v, key, lo, hi);
  }
  std::vector<int> int_list(const char* key, int lo, int hi) const {
    const json* v = find(key);
    if (!v) bad(key, "is missing");
    if (!v->is_array() || v->empty()) bad(key, "must be a non-empty list of integers");
    std::vector<int> out;
    for (size_t i = 0; i < v->size(); i++) out.push_back(as_int((*v)[i], std::string(key) + "[" + std::to_string(i) + "]", lo, hi));
    return out;
  }
  // One string for every stage, or a list of n strings.
  std::vector<std::string> per_stage(const char* key, size_t n, const std::string& dflt) const {
    const json* v = find(key);
    if (!v) return std::vector<std::string>(n, dflt);
    if (v->is_string()) return std::vector<std::string>(n, v->get<std::string>());
    if (!v->is_array() || v->size() != n) bad(key, "must be a string or a list of " + std::to_string(n) + " strings (one per stage)");
    std::vector<std::string> out;
    for (size_t i = 0; i < n; i++) {
      if (!(*v)[i].is_string()) bad(std::string(key) + "[" + std::to_string(i) + "]", "must be a string");
      out.push_back((*v)[i].get<std::string>());
    }
    return out;
  }
  std::string string(const char* key, const std::string& dflt) const {
    const json* v = find(key);
    if (!v) return dflt;
    if (!v->is_string()) bad(key, "must be a string");
    return v->get<std::string>();
  }
  DcaeAct act(const std::string& name, const std::string& field) const {
    if (name == "relu") return DcaeAct::Relu;
    if (name == "relu6") return DcaeAct::Relu6;
    if (name == "silu" || name == "swish") return DcaeAct::Silu;
    if (name == "gelu") return DcaeAct::Gelu;
    bad(field, "is '" + name + "'; only relu, relu6, silu and gelu are supported");
  }
};

}  // namespace

DcaeConfig DcaeConfig::parse(const std::string& text, const std::string& where) {
  json root;
  try {
    root = json::parse(text);
  } catch (const std::exception& e) {
    fail(code::kBadConfig, where + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) fail(code::kBadConfig, where + ": the document must be a JSON object");
  Reader r{root, where};
  std::string cls = r.string("_class_name", "AutoencoderDC");
  if (cls != "AutoencoderDC") r.bad("_class_name", "is '" + cls + "'; only 'AutoencoderDC' is supported");

  DcaeConfig c;
  c.latent_channels = r.integer("latent_channels", 1, 1 << 12);
  const int three = 3, thirty_two = 32;
  c.out_channels = r.integer("in_channels", 1, 64, &three);
  c.head_dim = r.integer("attention_head_dim", 1, 1 << 12, &thirty_two);

  const std::vector<int> ch = r.int_list("decoder_block_out_channels", 1, 1 << 16);
  const std::vector<int> layers = r.int_list("decoder_layers_per_block", 0, 1024);
  const size_t n = ch.size();
  if (n > 12) r.bad("decoder_block_out_channels", "lists " + std::to_string(n) + " stages; at most 12 are supported");
  if (layers.size() != n) r.bad("decoder_layers_per_block", "has " + std::to_string(layers.size()) + " entries but decoder_block_out_channels has " + std::to_string(n));
  const auto kinds = r.per_stage("decoder_block_types", n, "ResBlock");
  const auto norms = r.per_stage("decoder_norm_types", n, "rms_norm");
  const auto acts = r.per_stage("decoder_act_fns", n, "silu");

  const json* ms = r.find("decoder_qkv_multiscales");
  if (ms && (!ms->is_array() || ms->size() != n)) r.bad("decoder_qkv_multiscales", "must be a list of " + std::to_string(n) + " lists of kernel sizes (one per stage)");

  for (size_t i = 0; i < n; i++) {
    const std::string si = "[" + std::to_string(i) + "]";
    DcaeStage s;
    s.channels = ch[i];
    s.layers = layers[i];
    if (kinds[i] == "ResBlock") s.block = DcaeBlock::Res;
    else if (kinds[i] == "EfficientViTBlock") s.block = DcaeBlock::EfficientViT;
    else r.bad("decoder_block_types" + si, "is '" + kinds[i] + "'; only ResBlock and EfficientViTBlock are supported");
    if (norms[i] == "batch_norm") s.batch_norm = true;
    else if (norms[i] != "rms_norm") r.bad("decoder_norm_types" + si, "is '" + norms[i] + "'; only rms_norm and batch_norm are supported");
    s.act = r.act(acts[i], "decoder_act_fns" + si);
    if (ms) {
      const json& list = (*ms)[i];
      if (!list.is_array()) r.bad("decoder_qkv_multiscales" + si, "must be a list of kernel sizes");
      for (size_t j = 0; j < list.size(); j++) {
        int k = r.as_int(list[j], "decoder_qkv_multiscales" + si + "[" + std::to_string(j) + "]", 1, 63);
        if (k % 2 == 0) r.bad("decoder_qkv_multiscales" + si + "[" + std::to_string(j) + "]", "= " + std::to_string(k) + " must be odd (the map keeps its size)");
        s.multiscales.push_back(k);
      }
    }
    if (s.block == DcaeBlock::EfficientViT && s.layers > 0 && s.channels < c.head_dim)
      r.bad("decoder_block_out_channels" + si, "= " + std::to_string(s.channels) + " is below attention_head_dim " + std::to_string(c.head_dim) + " (an EfficientViTBlock needs one head)");
    c.stages.push_back(std::move(s));
  }

  // An empty stage is only meaningful at the ends: the deepest (nothing to run there) or the
  // shallowest (conv_out then upsamples). In between it would break the channel / resolution chain.
  for (size_t i = 1; i + 1 < n; i++)
    if (layers[i] == 0) r.bad("decoder_layers_per_block[" + std::to_string(i) + "]", "is 0; only the first and last stages may be empty");
  if (layers[0] == 0 && n < 2) r.bad("decoder_layers_per_block[0]", "is 0 but there is no deeper stage");

  std::string up = r.string("upsample_block_type", "pixel_shuffle");
  if (up == "interpolate") c.interpolate = true;
  else if (up != "pixel_shuffle") r.bad("upsample_block_type", "is '" + up + "'; only pixel_shuffle and interpolate are supported");
  // the channel-repeat shortcuts need whole repeat counts
  for (size_t i = 0; i + 1 < n; i++)
    if (layers[i] > 0 && (4 * ch[i]) % ch[i + 1])
      r.bad("decoder_block_out_channels[" + std::to_string(i) + "]", "= " + std::to_string(ch[i]) + ": 4x it is not a multiple of the next stage's " + std::to_string(ch[i + 1]) + " (the up block's shortcut repeats channels)");

  if (const json* v = r.find("decoder_in_shortcut")) {
    if (!v->is_boolean()) r.bad("decoder_in_shortcut", "must be true or false");
    c.in_shortcut = v->get<bool>();
  }
  if (c.in_shortcut && ch[n - 1] % c.latent_channels)
    r.bad("decoder_block_out_channels[" + std::to_string(n - 1) + "]", "= " + std::to_string(ch[n - 1]) + " is not a multiple of latent_channels " + std::to_string(c.latent_channels) + " (decoder_in_shortcut repeats the latent's channels)");
  c.conv_act = r.act(r.string("decoder_conv_act_fn", "relu"), "decoder_conv_act_fn");
  if (const json* v = r.find("scaling_factor")) {
    if (!v->is_number()) r.bad("scaling_factor", "must be a number");
    double x = v->get<double>();
    // latents are divided by it: a tiny or huge factor only overflows (real VAEs use 0.1 to 10)
    if (!(x >= 1e-6 && x <= 1e6)) r.bad("scaling_factor", "must be a number in [1e-06, 1e+06]");
    c.scaling_factor = float(x);
  }
  return c;
}

}  // namespace latte::model
