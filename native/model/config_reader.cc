#include "model/config_reader.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "core/error.h"

namespace latte::model {

namespace {

// %g: "1e-06", "0.5", "1e+12" (std::to_string prints six decimals and rounds tiny bounds to 0)
std::string num_str(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", x);
  return b;
}

std::string interval_str(const Interval& r) { return (r.lo_open ? "(" : "[") + num_str(r.lo) + ", " + num_str(r.hi) + "]"; }

}  // namespace

std::string read_config_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(code::kBadConfig, path + ": cannot read (a directory)");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(code::kBadConfig, path + ": cannot read (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << f.rdbuf();
  if (f.bad()) fail(code::kBadConfig, path + ": cannot read (" + std::strerror(errno) + ")");
  return text.str();
}

ConfigReader::ConfigReader(const std::string& text, std::string where) : where_(std::move(where)) {
  auto root = std::make_shared<json>();
  try {
    *root = json::parse(text);
  } catch (const std::exception& e) {
    fail(code::kBadConfig, where_ + ": not valid JSON (" + e.what() + ")");
  }
  if (!root->is_object()) bad("the document", "must be a JSON object");
  root_ = std::move(root);
  scopes_ = {root_.get()};
}

ConfigReader ConfigReader::within(std::initializer_list<const json*> scopes) const {
  ConfigReader r = *this;
  r.scopes_.assign(scopes);
  return r;
}

void ConfigReader::bad(const std::string& field, const std::string& why) const { fail(code::kBadConfig, where_ + ": " + field + " " + why); }

const nlohmann::json* ConfigReader::find(const char* key) const {
  for (const json* o : scopes_)
    if (o && o->is_object() && o->contains(key) && !(*o)[key].is_null()) return &(*o)[key];
  return nullptr;
}

int ConfigReader::as_int(const json& v, const std::string& field, int lo, int hi) const {
  if (!v.is_number_integer()) bad(field, "must be an integer");
  // compared as 64 bits (an unsigned beyond int64 saturates), so a huge value cannot wrap into range
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
  if (x < lo || x > hi) bad(field, "= " + v.dump() + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return int(x);
}

double ConfigReader::as_number(const json& v, const std::string& field, Interval r) const {
  if (!v.is_number()) bad(field, "must be a number");
  const double x = v.get<double>();
  if (!(r.lo_open ? x > r.lo : x >= r.lo) || !(x <= r.hi)) bad(field, "= " + v.dump() + " is outside " + interval_str(r));
  return x;
}

std::string ConfigReader::as_string(const json& v, const std::string& field, size_t max_bytes) const {
  if (!v.is_string()) bad(field, "must be a string");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() > max_bytes) bad(field, "is longer than " + std::to_string(max_bytes) + " bytes");
  return s;
}

int ConfigReader::integer(const char* key, int lo, int hi, std::optional<int> dflt) const {
  const json* v = find(key);
  if (!v) {
    if (!dflt) bad(key, "is missing");
    return *dflt;
  }
  return as_int(*v, key, lo, hi);
}

float ConfigReader::number(const char* key, float dflt, Interval range) const {
  const json* v = find(key);
  if (!v) return dflt;
  const double x = as_number(*v, key, range);
  if (x != 0 && !std::isnormal(float(x))) bad(key, "= " + v->dump() + " is too small for a 32-bit float");
  return float(x);
}

std::string ConfigReader::string(const char* key, const std::string& dflt, size_t max_bytes) const {
  const json* v = find(key);
  return v ? as_string(*v, key, max_bytes) : dflt;
}

bool ConfigReader::boolean(const char* key, bool dflt) const {
  const json* v = find(key);
  if (!v) return dflt;
  if (!v->is_boolean()) bad(key, "must be true or false");
  return v->get<bool>();
}

std::vector<int> ConfigReader::int_list(const char* key, int lo, int hi) const {
  const json* v = find(key);
  if (!v) bad(key, "is missing");
  if (!v->is_array() || v->empty()) bad(key, "must be a non-empty list of integers");
  std::vector<int> out;
  for (size_t i = 0; i < v->size(); i++) out.push_back(as_int((*v)[i], std::string(key) + "[" + std::to_string(i) + "]", lo, hi));
  return out;
}

void ConfigReader::expect(const char* key, const char* value) const { as_choice(string(key, value), key, Names<int>{{value, 0}}); }

std::string ConfigReader::only(const std::vector<const char*>& names) {
  std::string s = "only ";
  for (size_t i = 0; i < names.size(); i++) s += (i == 0 ? "'" : i + 1 < names.size() ? ", '" : " and '") + std::string(names[i]) + "'";
  return s + (names.size() == 1 ? " is supported" : " are supported");
}

}  // namespace latte::model
