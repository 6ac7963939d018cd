#include "generator_wrap.h"

#include <cmath>

#include "checkpoint_wrap.h"
#include "convert.h"
#include "engine_wrap.h"
#include "model_wrap.h"
#include "tensor_wrap.h"

namespace bindings {

using latte::fail;
using latte::code::kArg;

Napi::Function GeneratorWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeGenerator",
                     {InstanceAccessor<&GeneratorWrap::Config>("config"), InstanceMethod<&GeneratorWrap::Velocity>("velocity"),
                      InstanceMethod<&GeneratorWrap::VelocityLayers>("velocityLayers"), InstanceMethod<&GeneratorWrap::UsePrograms>("usePrograms"),
                      InstanceMethod<&GeneratorWrap::ReleasePrograms>("releasePrograms"), InstanceMethod<&GeneratorWrap::Dispose>("dispose")});
}

GeneratorWrap::GeneratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GeneratorWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    latte::Engine& e = EngineWrap::Get(info[0]);
    auto ck = CheckpointWrap::Get(info[1]);
    if (!info[2].IsString()) fail(kArg, "the generator config must be a JSON string");
    latte::DType storage = to_dtype(info[3]);
    std::string where = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "generator/config.json";
    auto cfg = latte::model::GeneratorConfig::parse(info[2].As<Napi::String>().Utf8Value(), where);
    model_ = std::make_unique<latte::model::Generator>(e, ck, cfg, storage);
    engine_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
  });
}

latte::model::Generator& GeneratorWrap::model() {
  if (!model_) fail(latte::code::kDisposed, "the generator is disposed");
  return *model_;
}

void GeneratorWrap::UsePrograms(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] {
    if (!info[0].IsBoolean()) fail(kArg, "usePrograms: expects true or false");
    model().use_programs(info[0].As<Napi::Boolean>().Value());
  });
}

void GeneratorWrap::ReleasePrograms(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] {
    if (!model_) return;  // after dispose there is nothing left to free
    const auto& cond = SequenceWrap::Cache(info[0]);
    const latte::model::KvCache* null = info[1].IsNull() || info[1].IsUndefined() ? nullptr : &SequenceWrap::Cache(info[1]);
    model_->release_programs(cond, null);
  });
}

void GeneratorWrap::Dispose(const Napi::CallbackInfo&) {
  model_.reset();
  if (!engine_ref_.IsEmpty()) engine_ref_.Reset();
}

Napi::Value GeneratorWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const auto& c = model().config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("hiddenSize", c.hidden_size);
    o.Set("numLayers", c.num_layers);
    o.Set("numGroups", c.num_groups);
    o.Set("latentChannels", c.latent_channels);
    Napi::Array size = Napi::Array::New(env, 2);
    size.Set(0u, c.latent_h);
    size.Set(1u, c.latent_w);
    o.Set("latentSize", size);
    o.Set("patchSize", c.patch_size);
    Napi::Array b = Napi::Array::New(env, c.boundaries.size());
    for (size_t i = 0; i < c.boundaries.size(); i++) b.Set(uint32_t(i), c.boundaries[i]);
    o.Set("boundaries", b);
    o.Set("guidanceScale", c.guidance_scale);
    if (c.guidance_per_group.empty()) {
      o.Set("guidancePerGroup", env.Null());
    } else {
      Napi::Array gw = Napi::Array::New(env, c.guidance_per_group.size());
      for (size_t i = 0; i < c.guidance_per_group.size(); i++) gw.Set(uint32_t(i), c.guidance_per_group[i]);
      o.Set("guidancePerGroup", gw);
    }
    o.Set("numSteps", c.num_steps);
    o.Set("sampler", c.sampler);
    o.Set("timeShift", c.time_shift);
    o.Set("promptTemplate", c.prompt_template);
    o.Set("nullPrompt", c.null_prompt);
    return o;
  });
}

static double number_arg(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) fail(kArg, std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(kArg, std::string(what) + " must be finite");
  return d;
}

static int int_arg(const Napi::Value& v, const char* what) {
  double d = number_arg(v, what);
  if (d != double(int(d))) fail(kArg, std::string(what) + " must be an integer");
  return int(d);
}

Napi::Value GeneratorWrap::Velocity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const latte::Tensor& x = TensorWrap::Get(info[0]);
    const double t = number_arg(info[1], "t");
    const int group = int_arg(info[2], "group");
    const auto& cond = SequenceWrap::Cache(info[3]);
    const latte::model::KvCache* null = info[4].IsNull() || info[4].IsUndefined() ? nullptr : &SequenceWrap::Cache(info[4]);
    const float w = float(number_arg(info[5], "guidance"));
    return TensorWrap::New(env, model().velocity(x, t, group, cond, null, w));
  });
}

Napi::Value GeneratorWrap::VelocityLayers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const latte::Tensor& x = TensorWrap::Get(info[0]);
    const double t = number_arg(info[1], "t");
    const int first = int_arg(info[2], "first layer"), last = int_arg(info[3], "last layer");
    const auto& cond = SequenceWrap::Cache(info[4]);
    const latte::model::KvCache* null = info[5].IsNull() || info[5].IsUndefined() ? nullptr : &SequenceWrap::Cache(info[5]);
    const float w = float(number_arg(info[6], "guidance"));
    return TensorWrap::New(env, model().velocity_layers(x, t, first, last, cond, null, w));
  });
}

}  // namespace bindings
