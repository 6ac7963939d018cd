// JS handle of an engine-resident tensor. Holds a reference to the buffer; the memory itself
// stays in the engine and is freed by dispose(), by the engine's dispose(), or by GC.
#pragma once
#include <napi.h>

#include "latte/engine.h"

namespace bindings {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object New(Napi::Env env, const latte::Tensor& t);
  static const latte::Tensor& Get(const Napi::Value& v);  // throws E_ARG / E_DISPOSED
  explicit TensorWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  latte::Tensor tensor_;
};

// Per-environment data (worker threads each load the addon in their own environment).
struct AddonData {
  Napi::FunctionReference tensor_ctor;
  Napi::FunctionReference checkpoint_ctor;
  Napi::FunctionReference engine_ctor;
  Napi::FunctionReference sequence_ctor;
};

}  // namespace bindings
