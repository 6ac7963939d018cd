#include "dcae_wrap.h"

#include "tensor_wrap.h"

namespace bindings {

Napi::Function DcaeWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeDcae", {InstanceAccessor<&DcaeWrap::Config>("config"), InstanceMethod<&DcaeWrap::Decode>("decode")});
}

DcaeWrap::DcaeWrap(const Napi::CallbackInfo& info)
    : WrappedModel(info, "the DC-AE decoder", [](latte::Engine& e, std::shared_ptr<latte::io::Checkpoint> ck, const latte::model::DcaeConfig& cfg) {
        return std::make_unique<latte::model::DcaeDecoder>(e, std::move(ck), cfg);
      }) {}

Napi::Value DcaeWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const auto& c = model().config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("latentChannels", c.latent_channels);
    o.Set("factor", c.factor());
    o.Set("scalingFactor", double(c.scaling_factor));
    o.Set("outChannels", c.out_channels);
    return o;
  });
}

Napi::Value DcaeWrap::Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const latte::Tensor& z = TensorWrap::Get(info[0]);
    return TensorWrap::New(env, model().decode(z));
  });
}

}  // namespace bindings
