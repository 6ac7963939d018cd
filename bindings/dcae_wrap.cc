#include "dcae_wrap.h"

#include "checkpoint_wrap.h"
#include "convert.h"
#include "engine_wrap.h"
#include "tensor_wrap.h"

namespace bindings {

using latte::fail;
using latte::code::kArg;

Napi::Function DcaeWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeDcae",
                     {InstanceAccessor<&DcaeWrap::Config>("config"), InstanceMethod<&DcaeWrap::Decode>("decode"),
                      InstanceMethod<&DcaeWrap::Dispose>("dispose")});
}

DcaeWrap::DcaeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DcaeWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    latte::Engine& e = EngineWrap::Get(info[0]);
    auto ck = CheckpointWrap::Get(info[1]);
    if (!info[2].IsString()) fail(kArg, "the DC-AE config must be a JSON string");
    std::string where = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "config.json";
    auto cfg = latte::model::DcaeConfig::parse(info[2].As<Napi::String>().Utf8Value(), where);
    model_ = std::make_unique<latte::model::DcaeDecoder>(e, ck, cfg);
    engine_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
  });
}

latte::model::DcaeDecoder& DcaeWrap::model() {
  if (!model_) fail(latte::code::kDisposed, "the DC-AE decoder is disposed");
  return *model_;
}

void DcaeWrap::Dispose(const Napi::CallbackInfo&) {
  model_.reset();  // drops the weight handles; the memory goes when no queued op still uses it
  if (!engine_ref_.IsEmpty()) engine_ref_.Reset();
}

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
