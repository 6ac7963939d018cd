// JS <-> engine conversions: shapes, dtypes, op attributes, and engine errors as JS Errors with
// a stable `code`.
#pragma once
#include <napi.h>

#include <exception>

#include "latte/engine.h"

namespace bindings {

latte::Shape to_shape(const Napi::Value& v);
Napi::Array from_shape(Napi::Env env, const latte::Shape& s);
latte::DType to_dtype(const Napi::Value& v);
latte::OpAttrs to_attrs(const Napi::Value& v);
Napi::Error to_js_error(Napi::Env env, std::exception_ptr e);
// A method's argument: E_ARG naming `what` unless it is a finite number, or an integer in [lo, hi].
constexpr int64_t kMaxIntArg = 9'000'000'000'000'000;  // below 2^53: every integer up to it is exact as a double
double number_arg(const Napi::Value& v, const char* what);
int64_t int_arg(const Napi::Value& v, const char* what, int64_t lo = 0, int64_t hi = kMaxIntArg);
std::vector<int32_t> i32_arg(const Napi::Value& v, const char* what);  // an Int32Array, copied
[[noreturn]] void throw_js(Napi::Env env, std::exception_ptr e);

// Runs f, turning any C++ exception into a thrown JS Error with a code.
template <class F>
auto guarded(Napi::Env env, F f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    throw_js(env, std::current_exception());
  }
}

}  // namespace bindings
