#include "generator_wrap.h"

#include <climits>

#include "model_wrap.h"
#include "tensor_wrap.h"

namespace bindings {

using latte::fail;
using latte::code::kArg;

Napi::Function GeneratorWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeGenerator",
                     {InstanceAccessor<&GeneratorWrap::Config>("config"), InstanceMethod<&GeneratorWrap::VelocityLayers>("velocityLayers"),
                      InstanceMethod<&GeneratorWrap::VelocityBatch>("velocityBatch"),
                      InstanceMethod<&GeneratorWrap::CheckPrompt>("checkPrompt"), InstanceMethod<&GeneratorWrap::UsePrograms>("usePrograms"),
                      InstanceMethod<&GeneratorWrap::ReleasePrograms>("releasePrograms")});
}

GeneratorWrap::GeneratorWrap(const Napi::CallbackInfo& info)
    : WrappedModel(info, "the generator", [&](latte::Engine& e, std::shared_ptr<latte::io::Checkpoint> ck, const latte::model::GeneratorConfig& cfg) {
        return std::make_unique<latte::model::Generator>(e, std::move(ck), cfg, to_dtype(info[3]));
      }) {}

void GeneratorWrap::UsePrograms(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] {
    if (!info[0].IsBoolean()) fail(kArg, "usePrograms: expects true or false");
    model().use_programs(info[0].As<Napi::Boolean>().Value());
  });
}

void GeneratorWrap::ReleasePrograms(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] {
    latte::model::Generator* m = live();
    if (!m) return;  // after dispose there is nothing left to free
    const auto& cond = SequenceWrap::Cache(info[0]);
    const latte::model::KvCache* null = info[1].IsNull() || info[1].IsUndefined() ? nullptr : &SequenceWrap::Cache(info[1]);
    m->release_programs(cond, null);
  });
}

void GeneratorWrap::CheckPrompt(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] { model().config().check_prompt(int_arg(info[0], "promptTokens"), int_arg(info[1], "maxPositions")); });
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

Napi::Value GeneratorWrap::VelocityLayers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const latte::Tensor& x = TensorWrap::Get(info[0]);
    const double t = number_arg(info[1], "t");
    const int first = int(int_arg(info[2], "first layer", 0, INT_MAX)), last = int(int_arg(info[3], "last layer", 0, INT_MAX));
    const auto& cond = SequenceWrap::Cache(info[4]);
    const latte::model::KvCache* null = info[5].IsNull() || info[5].IsUndefined() ? nullptr : &SequenceWrap::Cache(info[5]);
    const float w = float(number_arg(info[6], "guidance"));
    return TensorWrap::New(env, model().velocity(x, t, first, last, cond, null, w));
  });
}

Napi::Value GeneratorWrap::VelocityBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const latte::Tensor& x = TensorWrap::Get(info[0]);
    const int first = int(int_arg(info[1], "first layer", 0, INT_MAX)), last = int(int_arg(info[2], "last layer", 0, INT_MAX));
    if (!info[3].IsArray()) fail(kArg, "velocityBatch: requests must be an array");
    Napi::Array arr = info[3].As<Napi::Array>();
    std::vector<latte::model::VelocityRequest> reqs;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsObject()) fail(kArg, "velocityBatch: each request must be an object");
      Napi::Object o = v.As<Napi::Object>();
      latte::model::VelocityRequest r;
      r.t = number_arg(o.Get("t"), "t");
      r.cond = &SequenceWrap::Cache(o.Get("cond"));
      Napi::Value null = o.Get("null");
      r.null = null.IsNull() || null.IsUndefined() ? nullptr : &SequenceWrap::Cache(null);
      r.guidance = float(number_arg(o.Get("guidance"), "guidance"));
      r.images = int_arg(o.Get("images"), "images", 1, 1 << 20);
      reqs.push_back(r);
    }
    return TensorWrap::New(env, model().velocity_batch(x, first, last, reqs));
  });
}

}  // namespace bindings
