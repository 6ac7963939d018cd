// Native tests of the models' config reading (native/model/config_reader.h): every field problem
// is E_BAD_CONFIG naming the file and the field, and the generator's prompt bound is the rule it
// places image tokens by. No weights are needed.
#include <algorithm>
#include <functional>
#include <string>

#include "core/error.h"
#include "model/config_reader.h"
#include "model/dcae_config.h"
#include "model/generator_config.h"
#include "model/qwen2vl_config.h"

using namespace latte;
using namespace latte::model;

namespace {

// The error's code and message, or "" when f does not throw.
std::pair<std::string, std::string> error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const EngineError& e) {
    return {e.code, e.what()};
  }
  return {"", ""};
}

const char* kGenerator = R"({"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
  "num_layers": 4, "num_groups": 2, "latent_channels": 4, "latent_size": [8, 12], "patch_size": 2, "mrope_section": [2, 3, 3]})";

}  // namespace

void model_config_tests(const std::function<void(bool, const std::string&)>& ok) {
  // the reader: typed getters, defaults, scopes; every problem E_BAD_CONFIG "<where>: <field> <why>"
  const ConfigReader r(R"({"n": 3, "f": 0.5, "s": "x", "b": true, "list": [1, 2], "nul": null, "inner": {"n": 7}, "big": 18446744073709551615})", "cfg.json");
  ok(r.integer("n", 0, 5) == 3 && r.integer("absent", 0, 5, 4) == 4 && r.integer("nul", 0, 5, 2) == 2, "reader: integers, defaults, null as absent");
  ok(r.number("f", 1.f, Interval::positive(1)) == 0.5f && r.string("s", "") == "x" && r.boolean("b", false), "reader: number, string, boolean");
  ok(r.within({r.find("inner"), &r.root()}).integer("n", 0, 9) == 7 && r.within({r.find("inner"), &r.root()}).string("s", "") == "x", "reader: the first scope holding a field wins");
  const std::pair<std::string, const std::function<void()>> bad[] = {
      {"missing is missing", [&] { r.integer("missing", 0, 5); }},
      {"s must be an integer", [&] { r.integer("s", 0, 5); }},
      {"f must be an integer", [&] { r.integer("f", 0, 5); }},
      {"n = 3 is outside [4, 5]", [&] { r.integer("n", 4, 5); }},
      {"big = 18446744073709551615 is outside [-1, 5]", [&] { r.integer("big", -1, 5); }},
      {"s must be a number", [&] { r.number("s", 1.f, {0, 1}); }},
      {"n = 3 is outside (0, 1]", [&] { r.number("n", 1.f, Interval::positive(1)); }},
      {"n must be a string", [&] { r.string("n", ""); }},
      {"s is longer than 0 bytes", [&] { r.string("s", "", 0); }},
      {"n must be true or false", [&] { r.boolean("n", false); }},
      {"list[1] = 2 is outside [0, 1]", [&] { r.int_list("list", 0, 1); }},
      {"s is 'x'; only 'y' is supported", [&] { r.expect("s", "y"); }},
      {"s is 'x'; only 'a', 'b' and 'c' are supported", [&] { r.choice("s", "a", ConfigReader::Names<int>{{"a", 0}, {"b", 1}, {"c", 2}}); }},
      {"the document must be a JSON object", [] { ConfigReader("[1]", "cfg.json"); }},
  };
  for (const auto& [why, f] : bad) {
    auto [code, message] = error_of(f);
    ok(code == code::kBadConfig && message == "cfg.json: " + why, "reader: E_BAD_CONFIG '" + message + "'");
  }
  auto [tiny_code, tiny_message] = error_of([] { ConfigReader(R"({"x": 1e-300})", "c").number("x", 1.f, Interval::positive(1)); });
  ok(tiny_code == code::kBadConfig && tiny_message.find("too small for a 32-bit float") != std::string::npos, "reader: a double that underflows a float is refused");
  ok(error_of([] { ConfigReader("{\"a\": 1,", "c"); }).first == code::kBadConfig, "reader: truncated JSON -> E_BAD_CONFIG");
  auto [file_code, file_message] = error_of([] { read_config_file("/nonexistent/config.json"); });
  ok(file_code == code::kBadConfig && file_message.rfind("/nonexistent/config.json: cannot read", 0) == 0, "reader: a missing file -> E_BAD_CONFIG naming it");

  // each config lists its fields on the reader: an ill-typed one is E_BAD_CONFIG naming it
  auto field_error = [](const std::function<void()>& f, const std::string& field) {
    auto [code, message] = error_of(f);
    return code == code::kBadConfig && message.find(field) != std::string::npos;
  };
  ok(field_error([] { GeneratorConfig::parse(R"({"hidden_size": "64"})"); }, "hidden_size must be an integer"), "generator: a string hidden_size");
  std::string gen = kGenerator;
  auto with = [&](const std::string& extra) { return gen.substr(0, gen.size() - 1) + ", " + extra + "}"; };
  ok(field_error([&] { GeneratorConfig::parse(with(R"("sampler": 3)")); }, "sampler must be a string"), "generator: a numeric sampler");
  ok(field_error([&] { GeneratorConfig::parse(with(R"("guidance_per_group": [1, "2"])")); }, "guidance_per_group[1] must be a number"), "generator: a string CFG weight");
  ok(field_error([] { DcaeConfig::parse(R"({"latent_channels": 4, "decoder_block_out_channels": [8, 16], "decoder_layers_per_block": [1, 1], "decoder_in_shortcut": 1})"); }, "decoder_in_shortcut must be true or false"),
     "dcae: a numeric decoder_in_shortcut");
  ok(field_error([] { DcaeConfig::parse(R"({"latent_channels": 4, "decoder_block_out_channels": [8, 16], "decoder_layers_per_block": [1, 1], "decoder_act_fns": ["silu", "tanh"]})"); }, "decoder_act_fns[1] is 'tanh'"),
     "dcae: an unknown stage activation");
  ok(field_error([] { Qwen2VLConfig::parse(R"({"vision_config": {}, "text_config": {"hidden_size": [64]}})"); }, "hidden_size must be an integer"), "qwen2vl: a list hidden_size in text_config");

  // the prompt bound and the placement are one rule: the last image token (bottom right of the
  // 4 x 6 patch grid) takes P + 5, so a context of C positions takes prompts of C - 6 tokens
  const GeneratorConfig c = GeneratorConfig::parse(kGenerator);
  int64_t highest = 0;
  for (int64_t n = 0; n < c.tokens(); n++) {
    const auto at = c.image_position(10, n);
    highest = std::max(highest, *std::max_element(at.begin(), at.end()));
  }
  ok(highest == 10 + 5 && c.prompt_room(100) == 94, "generator: tokens after a 10-token prompt reach position 15; 100 positions take 94-token prompts");
  ok(error_of([&] { c.check_prompt(94, 100); }).first.empty(), "generator: a prompt exactly at the limit fits (its last image token at position 99)");
  auto [over_code, over_message] = error_of([&] { c.check_prompt(95, 100); });
  ok(over_code == code::kArg && over_message.find("this model takes at most 94") != std::string::npos, "generator: one token more is E_ARG");
}
