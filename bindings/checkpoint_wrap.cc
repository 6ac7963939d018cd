#include "checkpoint_wrap.h"

#include "convert.h"
#include "tensor_wrap.h"

namespace bindings {

Napi::Function CheckpointWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeCheckpoint",
                                 {InstanceMethod<&CheckpointWrap::Names>("names"), InstanceMethod<&CheckpointWrap::Info>("info"),
                                  InstanceMethod<&CheckpointWrap::Metadata>("metadata"), InstanceMethod<&CheckpointWrap::Close>("close")});
  env.GetInstanceData<AddonData>()->checkpoint_ctor = Napi::Persistent(f);
  return f;
}

CheckpointWrap::CheckpointWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CheckpointWrap>(info) {}

Napi::Value CheckpointWrap::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) latte::fail(latte::code::kArg, "openCheckpoint: path must be a string");
    auto ck = latte::io::Checkpoint::open(info[0].As<Napi::String>().Utf8Value());
    Napi::Object o = env.GetInstanceData<AddonData>()->checkpoint_ctor.New({});
    Napi::ObjectWrap<CheckpointWrap>::Unwrap(o)->ck_ = ck;
    return o;
  });
}

std::shared_ptr<latte::io::Checkpoint> CheckpointWrap::Get(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(v.Env().GetInstanceData<AddonData>()->checkpoint_ctor.Value()))
    latte::fail(latte::code::kArg, "expected a checkpoint from openCheckpoint()");
  auto ck = Napi::ObjectWrap<CheckpointWrap>::Unwrap(v.As<Napi::Object>())->ck_;
  if (!ck) latte::fail(latte::code::kDisposed, "checkpoint is closed");
  return ck;
}

Napi::Value CheckpointWrap::Names(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto names = Get(Value())->names();
    Napi::Array a = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); i++) a.Set(uint32_t(i), names[i]);
    return a;
  });
}

Napi::Value CheckpointWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) latte::fail(latte::code::kArg, "info: name must be a string");
    const auto& e = Get(Value())->get(info[0].As<Napi::String>().Utf8Value());
    Napi::Object o = Napi::Object::New(env);
    o.Set("dtype", e.dtype_name);
    o.Set("shape", from_shape(env, e.shape));
    o.Set("file", e.file->path);
    return o;
  });
}

Napi::Value CheckpointWrap::Metadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    for (auto& [k, v] : Get(Value())->metadata()) o.Set(k, v);
    return o;
  });
}

// Drops this handle's reference; engines that are still loading from it keep the mapping alive.
void CheckpointWrap::Close(const Napi::CallbackInfo&) { ck_.reset(); }

}  // namespace bindings
