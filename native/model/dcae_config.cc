#include "model/dcae_config.h"

#include "core/error.h"
#include "model/config_reader.h"

namespace latte::model {

using nlohmann::json;

namespace {

const ConfigReader::Names<DcaeAct> kActs = {{"relu", DcaeAct::Relu}, {"relu6", DcaeAct::Relu6}, {"silu", DcaeAct::Silu}, {"swish", DcaeAct::Silu}, {"gelu", DcaeAct::Gelu}};

// One string for every stage, or a list of n strings.
std::vector<std::string> per_stage(const ConfigReader& r, const char* key, size_t n, const std::string& dflt) {
  const json* v = r.find(key);
  if (!v) return std::vector<std::string>(n, dflt);
  if (v->is_string()) return std::vector<std::string>(n, r.as_string(*v, key));
  if (!v->is_array() || v->size() != n) r.bad(key, "must be a string or a list of " + std::to_string(n) + " strings (one per stage)");
  std::vector<std::string> out;
  for (size_t i = 0; i < n; i++) out.push_back(r.as_string((*v)[i], std::string(key) + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace

DcaeConfig DcaeConfig::parse(const std::string& text, const std::string& where) {
  const ConfigReader r(text, where);
  r.expect("_class_name", "AutoencoderDC");

  DcaeConfig c;
  c.latent_channels = r.integer("latent_channels", 1, 1 << 12);
  c.out_channels = r.integer("in_channels", 1, 64, 3);
  c.head_dim = r.integer("attention_head_dim", 1, 1 << 12, 32);

  const std::vector<int> ch = r.int_list("decoder_block_out_channels", 1, 1 << 16);
  const std::vector<int> layers = r.int_list("decoder_layers_per_block", 0, 1024);
  const size_t n = ch.size();
  if (n > 12) r.bad("decoder_block_out_channels", "lists " + std::to_string(n) + " stages; at most 12 are supported");
  if (layers.size() != n) r.bad("decoder_layers_per_block", "has " + std::to_string(layers.size()) + " entries but decoder_block_out_channels has " + std::to_string(n));
  const auto kinds = per_stage(r, "decoder_block_types", n, "ResBlock");
  const auto norms = per_stage(r, "decoder_norm_types", n, "rms_norm");
  const auto acts = per_stage(r, "decoder_act_fns", n, "silu");

  const json* ms = r.find("decoder_qkv_multiscales");
  if (ms && (!ms->is_array() || ms->size() != n)) r.bad("decoder_qkv_multiscales", "must be a list of " + std::to_string(n) + " lists of kernel sizes (one per stage)");

  for (size_t i = 0; i < n; i++) {
    const std::string si = "[" + std::to_string(i) + "]";
    DcaeStage s;
    s.channels = ch[i];
    s.layers = layers[i];
    s.block = r.as_choice(kinds[i], "decoder_block_types" + si, ConfigReader::Names<DcaeBlock>{{"ResBlock", DcaeBlock::Res}, {"EfficientViTBlock", DcaeBlock::EfficientViT}});
    s.batch_norm = r.as_choice(norms[i], "decoder_norm_types" + si, ConfigReader::Names<bool>{{"rms_norm", false}, {"batch_norm", true}});
    s.act = r.as_choice(acts[i], "decoder_act_fns" + si, kActs);
    if (ms) {
      const json& list = (*ms)[i];
      if (!list.is_array()) r.bad("decoder_qkv_multiscales" + si, "must be a list of kernel sizes");
      for (size_t j = 0; j < list.size(); j++) {
        const std::string field = "decoder_qkv_multiscales" + si + "[" + std::to_string(j) + "]";
        int k = r.as_int(list[j], field, 1, 63);
        if (k % 2 == 0) r.bad(field, "= " + std::to_string(k) + " must be odd (the map keeps its size)");
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

  c.interpolate = r.choice("upsample_block_type", "pixel_shuffle", ConfigReader::Names<bool>{{"pixel_shuffle", false}, {"interpolate", true}});
  // the channel-repeat shortcuts need whole repeat counts
  for (size_t i = 0; i + 1 < n; i++)
    if (layers[i] > 0 && (4 * ch[i]) % ch[i + 1])
      r.bad("decoder_block_out_channels[" + std::to_string(i) + "]", "= " + std::to_string(ch[i]) + ": 4x it is not a multiple of the next stage's " + std::to_string(ch[i + 1]) + " (the up block's shortcut repeats channels)");

  c.in_shortcut = r.boolean("decoder_in_shortcut", true);
  if (c.in_shortcut && ch[n - 1] % c.latent_channels)
    r.bad("decoder_block_out_channels[" + std::to_string(n - 1) + "]", "= " + std::to_string(ch[n - 1]) + " is not a multiple of latent_channels " + std::to_string(c.latent_channels) + " (decoder_in_shortcut repeats the latent's channels)");
  c.conv_act = r.choice("decoder_conv_act_fn", "relu", kActs);
  // decode() divides latents by it: a tiny or huge factor only overflows (real VAEs use 0.1 to 10)
  c.scaling_factor = r.number("scaling_factor", 1.f, {1e-6, 1e6});
  return c;
}

}  // namespace latte::model
