#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace latte::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kMaxHeader = 100u << 20;  // the format's own limit for the JSON header

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  fail(code::kBadWeights, path + ": " + what);
}

bool parse_dtype(const std::string& s, StDType* t) {
  static const std::map<std::string, StDType> m = {{"F64", StDType::F64}, {"F32", StDType::F32}, {"F16", StDType::F16},
                                                  {"BF16", StDType::BF16}, {"I64", StDType::I64}, {"I32", StDType::I32},
                                                  {"I16", StDType::I16}, {"I8", StDType::I8}, {"U8", StDType::U8},
                                                  {"BOOL", StDType::BOOL}};
  auto it = m.find(s);
  if (it == m.end()) return false;
  *t = it->second;
  return true;
}

// Deepest nesting a valid header needs: {name: {shape: [..]}}. Anything deeper is refused before
// parsing, so no later step (error messages included) recurses over attacker-sized depth.
constexpr int kMaxHeaderDepth = 4;

int json_depth(const uint8_t* p, const uint8_t* end) {
  int depth = 0, most = 0;
  bool in_string = false;
  for (; p < end; p++) {
    const uint8_t c = *p;
    if (in_string) {
      if (c == '\\') p++;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      most = std::max(most, ++depth);
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return most;
}

// A JSON value for an error message, cut short (a header value can be megabytes long).
std::string brief(const json& v) {
  std::string s = v.is_structured() && v.size() > 8 ? std::string(v.is_array() ? "[...]" : "{...}") : v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

size_t st_size(StDType t) {
  switch (t) {
    case StDType::F64: case StDType::I64: return 8;
    case StDType::F32: case StDType::I32: return 4;
    case StDType::F16: case StDType::BF16: case StDType::I16: return 2;
    default: return 1;
  }
}

std::shared_ptr<MappedFile> map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad(path, "not a regular file");
  }
  auto f = std::make_shared<MappedFile>();
  f->path = path;
  f->size = size_t(st.st_size);
  if (f->size > 0) {
    void* p = mmap(nullptr, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      bad(path, std::string("mmap failed: ") + std::strerror(errno));
    }
    f->data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file
  return f;
}

}  // namespace

MappedFile::~MappedFile() {
  if (data) munmap(const_cast<uint8_t*>(data), size);
}

bool convertible(StDType from, DType to) {
  bool is_float = from == StDType::F64 || from == StDType::F32 || from == StDType::F16 || from == StDType::BF16;
  if (to == DType::Q8) return false;  // q8 is made by pack_linear, never loaded as such
  return to == DType::I32 ? !is_float && from != StDType::BOOL : is_float;
}

void Checkpoint::add_file(const std::string& path) {
  auto f = map_file(path);
  if (f->size < 8) bad(path, "truncated: shorter than the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, f->data, 8);  // little-endian, as the format (and x86) is
  if (n > kMaxHeader) bad(path, "header length " + std::to_string(n) + " is implausible (corrupt file?)");
  if (8 + n > f->size) bad(path, "truncated: header runs past the end of the file");
  // The header is a JSON object, padded only with spaces (as writers align it): a BOM, NULs or other
  // bytes around it are not the format (the reference reader refuses them too)
  size_t last = n;
  while (last > 0 && f->data[8 + last - 1] == ' ') last--;
  if (n == 0 || f->data[8] != '{' || last == 0 || f->data[8 + last - 1] != '}')
    bad(path, "header is not a JSON object padded with spaces");
  if (json_depth(f->data + 8, f->data + 8 + n) > kMaxHeaderDepth) bad(path, "header nests deeper than a safetensors header does");
  json h = json::parse(f->data + 8, f->data + 8 + n, nullptr, false);
  if (h.is_discarded() || !h.is_object()) bad(path, "header is not a JSON object");
  const size_t data0 = 8 + size_t(n);
  std::vector<std::pair<size_t, size_t>> spans;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (v.is_object())
        for (auto& [k, m] : v.items())
          if (m.is_string()) metadata_[k] = m.get<std::string>();
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      bad(path, where + " lacks dtype, shape or data_offsets");
    TensorEntry e;
    e.name = name;
    e.file = f;
    if (!v["dtype"].is_string() || !parse_dtype(v["dtype"].get<std::string>(), &e.dtype))
      bad(path, where + " has an unsupported dtype " + brief(v["dtype"]));
    e.dtype_name = v["dtype"].get<std::string>();
    const json& sh = v["shape"];
    if (!sh.is_array() || sh.size() > size_t(kMaxDims)) bad(path, where + " has a bad shape " + brief(sh));
    // every partial product stays <= 2^40 elements, so nothing below can overflow 64 bits
    constexpr uint64_t kMaxElems = uint64_t(1) << 40;
    uint64_t numel = 1;
    bool zero = false;
    for (auto& d : sh) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > kMaxElems) bad(path, where + " has a bad shape " + brief(sh));
      const uint64_t n_d = d.get<uint64_t>();
      e.shape.d[e.shape.ndim++] = int64_t(n_d);
      if (n_d == 0) zero = true;
      else if (numel > kMaxElems / n_d) bad(path, where + " has " + brief(sh) + ": more than 2^40 elements");
      else numel *= n_d;
    }
    if (zero) numel = 0;
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad(path, where + " has bad data_offsets");
    uint64_t b0 = off[0].get<uint64_t>(), b1 = off[1].get<uint64_t>();
    if (b1 < b0 || b1 > f->size - data0) bad(path, where + " lies outside the file (truncated?)");
    if (b1 - b0 != numel * st_size(e.dtype))
      bad(path, where + " has " + std::to_string(b1 - b0) + " bytes but " + e.dtype_name + brief(sh) + " needs " + std::to_string(numel * st_size(e.dtype)));
    e.offset = data0 + size_t(b0);
    e.bytes = size_t(b1 - b0);
    if (e.bytes) spans.emplace_back(e.offset, e.offset + e.bytes);
    if (entries_.count(name)) bad(path, where + " appears in more than one file");
    entries_.emplace(name, std::move(e));
  }
  // The format requires the tensors to tile the data section exactly: no overlap, no hole, nothing
  // after the last. A header length that is off by a byte (JSON padded with spaces still parses)
  // breaks the tiling, where it would otherwise shift every tensor silently.
  std::sort(spans.begin(), spans.end());
  size_t at = data0;
  for (auto& [b, e] : spans) {
    if (b < at) bad(path, "two tensors overlap in the data section");
    if (b > at) bad(path, "the data section has " + std::to_string(b - at) + " unused bytes at offset " + std::to_string(at - data0) + " (wrong header length?)");
    at = e;
  }
  if (at != f->size) bad(path, "the data section has " + std::to_string(f->size - at) + " bytes after the last tensor (wrong header length?)");
  files_.push_back(f);
}

std::shared_ptr<Checkpoint> Checkpoint::open(const std::string& path) {
  auto ck = std::make_shared<Checkpoint>();
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(code::kBadWeights, path + ": no such file or directory");
  fs::path p(path);
  if (fs::is_directory(p, ec)) {
    // a directory: its one index, else every .safetensors file in it
    std::vector<fs::path> shards, indexes;
    for (auto& de : fs::directory_iterator(p, ec)) {
      std::string fn = de.path().filename().string();
      if (fn.size() > 11 && fn.compare(fn.size() - 11, 11, ".index.json") == 0) indexes.push_back(de.path());
      else if (fn.size() > 12 && fn.compare(fn.size() - 12, 12, ".safetensors") == 0) shards.push_back(de.path());
    }
    if (indexes.size() > 1) fail(code::kBadWeights, path + ": more than one *.index.json");
    if (indexes.size() == 1) return open(indexes[0].string());
    if (shards.empty()) fail(code::kBadWeights, path + ": no .safetensors files");
    std::sort(shards.begin(), shards.end());
    for (auto& s : shards) ck->add_file(s.string());
    return ck;
  }
  std::string fn = p.filename().string();
  if (fn.size() > 5 && fn.compare(fn.size() - 5, 5, ".json") == 0) {
    std::ifstream in(path);
    json idx = json::parse(in, nullptr, false);
    if (idx.is_discarded() || !idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
      fail(code::kBadWeights, path + ": not a safetensors index (no weight_map)");
    std::vector<std::string> shard_names;
    for (auto& [name, shard] : idx["weight_map"].items()) {
      if (!shard.is_string()) fail(code::kBadWeights, path + ": weight_map entry '" + name + "' is not a file name");
      std::string s = shard.get<std::string>();
      if (s.find('/') != std::string::npos || s == "..") fail(code::kBadWeights, path + ": shard '" + s + "' must be a file beside the index");
      if (std::find(shard_names.begin(), shard_names.end(), s) == shard_names.end()) shard_names.push_back(s);
    }
    for (auto& s : shard_names) ck->add_file((p.parent_path() / s).string());
    for (auto& [name, shard] : idx["weight_map"].items())
      if (!ck->has(name)) fail(code::kBadWeights, path + ": '" + name + "' is listed for " + shard.get<std::string>() + " but not in it");
    return ck;
  }
  ck->add_file(path);
  return ck;
}

const TensorEntry& Checkpoint::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(code::kBadWeights, "checkpoint has no tensor '" + name + "'");
  return it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> v;
  for (auto& [k, _] : entries_) v.push_back(k);
  return v;
}

void convert_entry(const TensorEntry& e, DType target, void* out) {
  const uint8_t* src = e.ptr();
  const int64_t n = e.shape.numel();
  if (!convertible(e.dtype, target))
    fail(code::kDType, "tensor '" + e.name + "' (" + e.dtype_name + ") cannot load as " + dtype_name(target));
  auto read_float = [&](int64_t i) -> float {
    switch (e.dtype) {
      case StDType::F64: { double d; std::memcpy(&d, src + 8 * i, 8); return float(d); }
      case StDType::F32: { float f; std::memcpy(&f, src + 4 * i, 4); return f; }
      case StDType::F16: { uint16_t h; std::memcpy(&h, src + 2 * i, 2); return f16_to_f32(h); }
      default: { uint16_t h; std::memcpy(&h, src + 2 * i, 2); return bf16_to_f32(h); }
    }
  };
  if (target == DType::I32) {
    int32_t* o = static_cast<int32_t*>(out);
    for (int64_t i = 0; i < n; i++) {
      int64_t v;
      switch (e.dtype) {
        case StDType::I64: std::memcpy(&v, src + 8 * i, 8); break;
        case StDType::I32: { int32_t x; std::memcpy(&x, src + 4 * i, 4); v = x; break; }
        case StDType::I16: { int16_t x; std::memcpy(&x, src + 2 * i, 2); v = x; break; }
        case StDType::I8: v = int8_t(src[i]); break;
        default: v = src[i]; break;
      }
      if (v < INT32_MIN || v > INT32_MAX) fail(code::kBadWeights, "tensor '" + e.name + "' holds " + std::to_string(v) + ", outside int32");
      o[i] = int32_t(v);
    }
    return;
  }
  // same-type float loads are plain copies (bit-exact); others go through f32
  if ((target == DType::F32 && e.dtype == StDType::F32) || (target == DType::BF16 && e.dtype == StDType::BF16) ||
      (target == DType::F16 && e.dtype == StDType::F16)) {
    std::memcpy(out, src, e.bytes);
  } else {
    for (int64_t i = 0; i < n; i++) {
      float v = read_float(i);
      if (target == DType::F32) static_cast<float*>(out)[i] = v;
      else if (target == DType::BF16) static_cast<uint16_t*>(out)[i] = f32_to_bf16(v);
      else static_cast<uint16_t*>(out)[i] = f32_to_f16(v);
    }
  }
  // A NaN or Inf weight (or one that overflows the target type) only shows later as black images
  // or garbage text: refuse it here, on bytes that are in cache anyway.
  const int64_t bad_at = first_nonfinite(out, target, n);
  if (bad_at >= 0)
    fail(code::kBadWeights, "tensor '" + e.name + "' holds a NaN or infinite value (loaded as " + dtype_name(target) + ") at element " + std::to_string(bad_at) + " (in " + e.file->path + ")");
}

int64_t first_nonfinite(const void* data, DType t, int64_t n) {
  // all-ones exponent = Inf or NaN; the OR over a block keeps the common (clean) case branch-free
  auto scan = [n](const auto* v, auto exp_mask) -> int64_t {
    constexpr int64_t kBlock = 4096;
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t e = std::min(n, b + kBlock);
      bool hit = false;
      for (int64_t i = b; i < e; i++) hit |= (v[i] & exp_mask) == exp_mask;
      if (hit)
        for (int64_t i = b; i < e; i++)
          if ((v[i] & exp_mask) == exp_mask) return i;
    }
    return -1;
  };
  switch (t) {
    case DType::F32: return scan(static_cast<const uint32_t*>(data), uint32_t(0x7f800000u));
    case DType::BF16: return scan(static_cast<const uint16_t*>(data), uint16_t(0x7f80u));
    case DType::F16: return scan(static_cast<const uint16_t*>(data), uint16_t(0x7c00u));
    default: return -1;
  }
}

}  // namespace latte::io
