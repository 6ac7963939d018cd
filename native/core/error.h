// Errors the engine raises. Every error carries a stable code string that the bindings copy
// to the JS Error's `code`; messages may change, codes may not.
#pragma once
#include <stdexcept>
#include <string>

namespace latte {

namespace code {
constexpr const char* kShape = "E_SHAPE";            // operand shapes do not fit the op
constexpr const char* kDType = "E_DTYPE";            // operand dtype not supported by the op
constexpr const char* kArg = "E_ARG";                // a bad attribute / option value
constexpr const char* kIndex = "E_INDEX";            // an id or position out of range (found while running)
constexpr const char* kOom = "E_OOM";                // an allocation failed
constexpr const char* kDisposed = "E_DISPOSED";      // the engine or tensor was disposed
constexpr const char* kBackend = "E_BACKEND_UNAVAILABLE";
constexpr const char* kNotComputed = "E_NOT_COMPUTED";  // an input's producing op failed or was dropped
constexpr const char* kAborted = "E_ABORTED";        // pending work dropped before it ran
constexpr const char* kBadWeights = "E_BAD_WEIGHTS";  // a checkpoint file is missing, corrupt or mis-shaped
constexpr const char* kBadConfig = "E_BAD_CONFIG";    // a model config that is malformed or unsupported
constexpr const char* kInternal = "E_INTERNAL";
}  // namespace code

struct EngineError : std::runtime_error {
  std::string code;
  EngineError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

[[noreturn]] inline void fail(const char* c, const std::string& msg) { throw EngineError(c, msg); }

inline void check(bool ok, const char* c, const std::string& msg) {
  if (!ok) fail(c, msg);
}

}  // namespace latte
