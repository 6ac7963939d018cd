// JS handle of an opened (memory-mapped) safetensors checkpoint.
#pragma once
#include <napi.h>

#include <memory>

#include "io/safetensors.h"

namespace bindings {

class CheckpointWrap : public Napi::ObjectWrap<CheckpointWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Value Open(const Napi::CallbackInfo& info);  // openCheckpoint(path)
  static std::shared_ptr<latte::io::Checkpoint> Get(const Napi::Value& v);
  explicit CheckpointWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Names(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Metadata(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);
  std::shared_ptr<latte::io::Checkpoint> ck_;
};

}  // namespace bindings
