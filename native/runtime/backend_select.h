// Choosing a backend for an engine: 'cpu', 'cuda' (fails with E_BACKEND_UNAVAILABLE when it cannot
// be met) or 'auto' (CUDA when usable, else CPU, with the reason recorded; the LATTE_BACKEND
// environment variable overrides 'auto').
#pragma once
#include <memory>
#include <string>

#include "core/backend.h"
#include "core/backend_info.h"

namespace latte {

struct Selected {
  std::unique_ptr<Backend> backend;
  std::string name, reason;
};
Selected select_backend(const std::string& request);

}  // namespace latte
