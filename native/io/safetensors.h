// Safetensors checkpoints, memory-mapped. A Checkpoint is one .safetensors file, a directory of
// them, or a Hugging Face index (model.safetensors.index.json + shards). Opening parses and checks
// every header (offsets inside the file, sizes that match dtype x shape, tensors that tile the data
// section exactly, no absurd nesting or element counts); any problem
// is an E_BAD_WEIGHTS error naming the file and tensor. Tensor bytes stay in the mapping until an
// engine loads them.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace latte::io {

enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

struct MappedFile {
  std::string path;
  const uint8_t* data = nullptr;
  size_t size = 0;
  ~MappedFile();
};

struct TensorEntry {
  std::string name;
  StDType dtype;
  std::string dtype_name;  // as written in the file ("F32", "BF16", ...)
  Shape shape;
  std::shared_ptr<MappedFile> file;
  size_t offset = 0, bytes = 0;  // absolute, within the file
  const uint8_t* ptr() const { return file->data + offset; }
};

class Checkpoint {
 public:
  static std::shared_ptr<Checkpoint> open(const std::string& path);
  const TensorEntry& get(const std::string& name) const;  // E_BAD_WEIGHTS if absent
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t files() const { return files_.size(); }

 private:
  void add_file(const std::string& path);
  std::map<std::string, TensorEntry> entries_;
  std::map<std::string, std::string> metadata_;  // merged __metadata__ of all files
  std::vector<std::shared_ptr<MappedFile>> files_;
};

// Copies a checkpoint tensor into `out` (f32/bf16/f16 from any float type, i32 from any integer
// type with a range check). `out` must already have the entry's element count. A float value that
// is NaN or infinite after conversion is an E_BAD_WEIGHTS error naming the tensor.
void convert_entry(const TensorEntry& e, DType target, void* out);
bool convertible(StDType from, DType to);
// Index of the first NaN/Inf among n values of a float dtype (-1: none, or not a float dtype).
int64_t first_nonfinite(const void* data, DType t, int64_t n);

}  // namespace latte::io
