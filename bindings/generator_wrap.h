// JS face of the generation stream (native/model/generator.h): NativeGenerator. velocityLayers()
// enqueues one layer range's forward (both CFG branches) and returns the velocity tensor at once;
// which layers a step runs is lib/generator.ts's decision.
#pragma once
#include <napi.h>

#include "model/generator.h"
#include "wrapped_model.h"

namespace bindings {

class GeneratorWrap : public WrappedModel<GeneratorWrap, latte::model::Generator, latte::model::GeneratorConfig> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit GeneratorWrap(const Napi::CallbackInfo& info);  // (engine, checkpoint, readConfig(path), 'f32' | 'bf16')

 private:
  Napi::Value Config(const Napi::CallbackInfo& info);
  // (x, t, firstLayer, lastLayer, condSeq, nullSeq | null, guidance) -> v
  Napi::Value VelocityLayers(const Napi::CallbackInfo& info);
  // (x, firstLayer, lastLayer, [{t, cond, null | null, guidance, images}]) -> v of every request, in order
  Napi::Value VelocityBatch(const Napi::CallbackInfo& info);
  // (promptTokens, maxPositions): E_ARG when the image tokens would not fit after the prompt
  void CheckPrompt(const Napi::CallbackInfo& info);
  void UsePrograms(const Napi::CallbackInfo& info);
  void ReleasePrograms(const Napi::CallbackInfo& info);
};

}  // namespace bindings
