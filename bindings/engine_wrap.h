// JS face of latte::Engine. Enqueueing methods return at once; read/fence/dispose return
// Promises settled from the stream through one thread-safe function per engine.
#pragma once
#include <napi.h>

#include <memory>

#include "latte/engine.h"

namespace bindings {

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  // The engine behind a NativeEngine object (E_ARG if it is not one, E_DISPOSED once disposed).
  static latte::Engine& Get(const Napi::Value& v);
  explicit EngineWrap(const Napi::CallbackInfo& info);
  ~EngineWrap() override;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Upload(const Napi::CallbackInfo& info);
  Napi::Value Op(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Fence(const Napi::CallbackInfo& info);
  Napi::Value DropPending(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  // Completion plumbing: `post` runs fn on the JS thread; while any is outstanding the engine's
  // JS object and the event loop are kept alive.
  using JsCall = std::function<void(Napi::Env)>;
  void post(JsCall fn);
  void begin_pending(Napi::Env env);
  void end_pending();
  struct PendingScope;

  std::unique_ptr<latte::Engine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  // false once the TSFN is released by us or finalized by Node (at environment teardown Node
  // closes it before finalizing this object; releasing it then would abort)
  std::shared_ptr<bool> tsfn_live_ = std::make_shared<bool>(false);
  void release_tsfn();
  int pending_ = 0;
};

}  // namespace bindings
