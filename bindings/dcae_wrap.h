// JS face of the DC-AE decoder: NativeDcae. decode() enqueues on the model's engine and returns
// the image tensor at once.
#pragma once
#include <napi.h>

#include <memory>

#include "model/dcae.h"

namespace bindings {

class DcaeWrap : public Napi::ObjectWrap<DcaeWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit DcaeWrap(const Napi::CallbackInfo& info);  // (engine, checkpoint, configJson, configPath?)

 private:
  latte::model::DcaeDecoder& model();
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);  // (latent [B, C, h, w]) -> image [B, 3, h*f, w*f]
  void Dispose(const Napi::CallbackInfo& info);

  Napi::ObjectReference engine_ref_;  // keeps the engine object alive as long as the model
  std::unique_ptr<latte::model::DcaeDecoder> model_;
};

}  // namespace bindings
