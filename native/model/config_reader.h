// The one reader of the models' config.json files (Qwen2-VL, the generation stream, DC-AE): the
// file read and parsed once, and typed field getters that check type and range, so that each
// config only lists its fields. Every problem is an E_BAD_CONFIG error "<where>: <field> <why>".
// A field that is absent or null takes its default; without a default it "is missing".
#pragma once
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace latte::model {

// The file's bytes; a missing or unreadable file is E_BAD_CONFIG naming it.
std::string read_config_file(const std::string& path);

// A closed interval, or (lo, hi] with lo_open.
struct Interval {
  double lo, hi;
  bool lo_open = false;
  static Interval positive(double hi) { return {0, hi, true}; }
};

class ConfigReader {
 public:
  using json = nlohmann::json;
  template <class E>
  using Names = std::initializer_list<std::pair<const char*, E>>;
  // strings are encoded or compared per request: keep them prompt-sized
  static constexpr size_t kMaxString = 4096;

  // Parses `text`; not JSON, or not a JSON object, is E_BAD_CONFIG naming `where`.
  ConfigReader(const std::string& text, std::string where);

  // The same document, looking fields up in `scopes` in order, the first holding the field winning
  // (transformers 5 nests Qwen2-VL's text fields under text_config); scopes that are not objects are skipped.
  ConfigReader within(std::initializer_list<const json*> scopes) const;
  const json& root() const { return *root_; }

  [[noreturn]] void bad(const std::string& field, const std::string& why) const;
  const json* find(const char* key) const;

  int integer(const char* key, int lo, int hi, std::optional<int> dflt = std::nullopt) const;
  // A float field: in range and representable as a normal float (or 0), so a value the model's
  // math cannot take is refused here instead of failing every request.
  float number(const char* key, float dflt, Interval range) const;
  std::string string(const char* key, const std::string& dflt, size_t max_bytes = kMaxString) const;
  bool boolean(const char* key, bool dflt) const;
  // A non-empty list of integers.
  std::vector<int> int_list(const char* key, int lo, int hi) const;
  // Absent or exactly `value`.
  void expect(const char* key, const char* value) const;
  // A string naming one of `names` (absent: dflt).
  template <class E>
  E choice(const char* key, const char* dflt, Names<E> names) const {
    return as_choice(string(key, dflt), key, names);
  }

  // The same checks on a value found elsewhere (inside a list), named `field` in errors.
  int as_int(const json& v, const std::string& field, int lo, int hi) const;
  double as_number(const json& v, const std::string& field, Interval range) const;
  std::string as_string(const json& v, const std::string& field, size_t max_bytes = kMaxString) const;
  template <class E>
  E as_choice(const std::string& s, const std::string& field, Names<E> names) const {
    std::vector<const char*> all;
    for (const auto& [name, value] : names) {
      if (s == name) return value;
      all.push_back(name);
    }
    bad(field, "is '" + s + "'; " + only(all));
  }

 private:
  static std::string only(const std::vector<const char*>& names);  // "only 'a' and 'b' are supported"
  std::shared_ptr<const json> root_;
  std::string where_;
  std::vector<const json*> scopes_;
};

}  // namespace latte::model
