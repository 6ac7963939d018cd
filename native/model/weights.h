// Binds model weights by their checkpoint names: every tensor is looked up (with the aliases of
// other saving conventions), checked against the shape the config implies, and loaded onto the
// engine in the model's storage dtype; linear weights are packed once for the backend's GEMM.
// A missing or mis-shaped tensor is an E_BAD_WEIGHTS error naming it, raised before any work runs.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "latte/engine.h"

namespace latte::io {
class Checkpoint;
}

namespace latte::model {

struct Linear {
  Tensor w;  // packed [out, in]
  Tensor b;  // [out] f32, or empty
  bool has_bias() const { return bool(b.buf); }
};

class WeightBinder {
 public:
  // aliases: (prefix as the model names it, prefix another convention writes) pairs
  WeightBinder(Engine& e, std::shared_ptr<io::Checkpoint> ck, DType storage, std::vector<std::pair<std::string, std::string>> aliases = {});

  Tensor small(const std::string& name, const Shape& shape);  // norms and biases: read as f32
  Tensor big(const std::string& name, const Shape& shape);    // tables: the storage dtype
  Linear linear(const std::string& prefix, int64_t out, int64_t in, bool bias);
  Linear pack(const Tensor& w, const Tensor* b);  // an already-loaded [out, in] weight
  bool has(const std::string& name) const;
  DType storage() const { return storage_; }

 private:
  std::string resolve(const std::string& name) const;
  Tensor load(const std::string& name, const Shape& shape, DType as);
  Engine& e_;
  std::shared_ptr<io::Checkpoint> ck_;
  DType storage_;
  std::vector<std::pair<std::string, std::string>> aliases_;
};

}  // namespace latte::model
