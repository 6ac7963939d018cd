// JS face of the DC-AE decoder: NativeDcae. decode() enqueues on the model's engine and returns
// the image tensor at once.
#pragma once
#include <napi.h>

#include "model/dcae.h"
#include "wrapped_model.h"

namespace bindings {

class DcaeWrap : public WrappedModel<DcaeWrap, latte::model::DcaeDecoder, latte::model::DcaeConfig> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit DcaeWrap(const Napi::CallbackInfo& info);  // (engine, checkpoint, readConfig(path))

 private:
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);  // (latent [B, C, h, w], not yet divided by scaling_factor) -> image [B, 3, h*f, w*f]
};

}  // namespace bindings
