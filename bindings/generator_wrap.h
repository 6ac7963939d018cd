// JS face of the generation stream (native/model/generator.h): NativeGenerator. velocity()
// enqueues one expert-group forward (both CFG branches) and returns the velocity tensor at once.
#pragma once
#include <napi.h>

#include <memory>

#include "model/generator.h"

namespace bindings {

class GeneratorWrap : public Napi::ObjectWrap<GeneratorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit GeneratorWrap(const Napi::CallbackInfo& info);  // (engine, checkpoint, configJson, 'f32' | 'bf16', configPath?)

 private:
  latte::model::Generator& model();
  Napi::Value Config(const Napi::CallbackInfo& info);
  // (x, t, group, condSeq, nullSeq | null, guidance) -> v
  Napi::Value Velocity(const Napi::CallbackInfo& info);
  // (x, t, firstLayer, lastLayer, condSeq, nullSeq | null, guidance) -> v (e.g. the full-depth baseline)
  Napi::Value VelocityLayers(const Napi::CallbackInfo& info);
  void UsePrograms(const Napi::CallbackInfo& info);
  void ReleasePrograms(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);

  Napi::ObjectReference engine_ref_;
  std::unique_ptr<latte::model::Generator> model_;
};

}  // namespace bindings
