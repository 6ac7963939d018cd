// The one JS face shared by the engine's models (NativeQwen2VL, NativeGenerator, NativeDcae):
//   Class.readConfig(path): reads and checks config.json in C++, once (E_BAD_CONFIG), and returns it
//     opaque; the TypeScript loader calls it first, so a bad config is reported before the weights
//   new Class(engine, checkpoint, config, ...): builds the model on the engine; the engine's JS
//     object stays alive as long as the model
//   dispose(): drops the weight handles (the memory goes when no queued op still uses it); any
//     later use is E_DISPOSED.
// A wrapper derives from WrappedModel<Itself, Model, Config> and adds its own methods.
#pragma once
#include <napi.h>

#include <any>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint_wrap.h"
#include "convert.h"
#include "engine_wrap.h"
#include "model/config_reader.h"

namespace bindings {

// Marks readConfig()'s Externals, so no other External passes for a config.
inline constexpr napi_type_tag kConfigTag = {0x6c61747465636667ULL, 0x2d636f6e66696721ULL};

template <class Derived, class Model, class Config>
class WrappedModel : public Napi::ObjectWrap<Derived> {
 protected:
  using Wrap = Napi::ObjectWrap<Derived>;
  using Members = std::vector<typename Wrap::PropertyDescriptor>;

  // `make(engine, checkpoint, config)` returns the model; `what` names it in errors ("the generator").
  template <class Make>
  WrappedModel(const Napi::CallbackInfo& info, const char* what, Make make) : Wrap(info), what_(what) {
    guarded(info.Env(), [&] {
      latte::Engine& e = EngineWrap::Get(info[0]);
      std::shared_ptr<latte::io::Checkpoint> ck = CheckpointWrap::Get(info[1]);
      model_ = make(e, std::move(ck), config_arg(info[2]));
      engine_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    });
  }

  // The JS class: `members` plus readConfig and dispose (hiding ObjectWrap's DefineClass, so no
  // wrapper can leave them out).
  static Napi::Function DefineClass(Napi::Env env, const char* name, Members members) {
    members.push_back(Wrap::template StaticMethod<&WrappedModel::ReadConfig>("readConfig"));
    members.push_back(Wrap::InstanceMethod("dispose", static_cast<void (Derived::*)(const Napi::CallbackInfo&)>(&WrappedModel::Dispose)));
    return Wrap::DefineClass(env, name, members);
  }

  Model& model() {
    if (!model_) latte::fail(latte::code::kDisposed, std::string(what_) + " is disposed");
    return *model_;
  }
  // null after dispose (for calls that have nothing to do then)
  Model* live() { return model_.get(); }

 private:
  static Napi::Value ReadConfig(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (!info[0].IsString()) latte::fail(latte::code::kArg, "readConfig: the config path must be a string");
      const std::string path = info[0].As<Napi::String>().Utf8Value();
      auto held = std::make_unique<std::any>(Config::parse(latte::model::read_config_file(path), path));
      auto ext = Napi::External<std::any>::New(env, held.get(), [](Napi::Env, std::any* p) { delete p; });
      held.release();
      ext.TypeTag(&kConfigTag);
      return ext;
    });
  }

  static const Config& config_arg(const Napi::Value& v) {
    const Config* c = nullptr;
    if (v.IsExternal() && v.As<Napi::External<std::any>>().CheckTypeTag(&kConfigTag)) c = std::any_cast<Config>(v.As<Napi::External<std::any>>().Data());
    if (!c) latte::fail(latte::code::kArg, "expected the config this model's readConfig() returned");
    return *c;
  }

  void Dispose(const Napi::CallbackInfo&) {
    model_.reset();
    if (!engine_ref_.IsEmpty()) engine_ref_.Reset();
  }

  const char* what_;
  Napi::ObjectReference engine_ref_;  // keeps the engine object alive as long as the model
  std::unique_ptr<Model> model_;
};

}  // namespace bindings
