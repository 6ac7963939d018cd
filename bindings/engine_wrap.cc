#include "engine_wrap.h"

#include <cstring>

#include "checkpoint_wrap.h"
#include "convert.h"
#include "tensor_wrap.h"

namespace bindings {

Napi::Function EngineWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeEngine",
                     {InstanceAccessor<&EngineWrap::Info>("info"), InstanceAccessor<&EngineWrap::Disposed>("disposed"),
                      InstanceMethod<&EngineWrap::Upload>("upload"), InstanceMethod<&EngineWrap::Op>("op"),
                      InstanceMethod<&EngineWrap::Reshape>("reshape"), InstanceMethod<&EngineWrap::Load>("load"), InstanceMethod<&EngineWrap::Read>("read"),
                      InstanceMethod<&EngineWrap::Fence>("fence"), InstanceMethod<&EngineWrap::DropPending>("dropPending"),
                      InstanceMethod<&EngineWrap::Dispose>("dispose"), InstanceMethod<&EngineWrap::Stats>("stats")});
  env.GetInstanceData<AddonData>()->engine_ctor = Napi::Persistent(f);
  return f;
}

EngineWrap::EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    latte::EngineOptions opts;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      if (o.Get("backend").IsString()) opts.backend = o.Get("backend").As<Napi::String>().Utf8Value();
      if (o.Get("threads").IsNumber()) opts.threads = o.Get("threads").As<Napi::Number>().Int32Value();
    }
    engine_ = std::make_unique<latte::Engine>(opts);
  });
  auto live = tsfn_live_;
  tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "latte-flow stream", 0, 1,
                                        [live](Napi::Env) { *live = false; });
  tsfn_.Unref(env);
  *tsfn_live_ = true;
}

void EngineWrap::release_tsfn() {
  if (*tsfn_live_) {
    *tsfn_live_ = false;
    tsfn_.Release();
  }
}

EngineWrap::~EngineWrap() {
  engine_.reset();  // drops queued work (nothing owes JS an answer: pending_ is 0), joins the worker
  release_tsfn();
}

void EngineWrap::post(JsCall fn) {
  auto* heap = new JsCall(std::move(fn));
  napi_status st = tsfn_.NonBlockingCall(heap, [](Napi::Env env, Napi::Function, JsCall* f) {
    std::unique_ptr<JsCall> own(f);
    if (!env) return;
    // Nothing may escape into N-API: a C++ exception here aborts the whole process. While a
    // worker thread is being terminated every N-API call fails (node-addon-api throws); the
    // promise can no longer reach anyone then, so the failure is dropped.
    try {
      (*own)(env);
    } catch (...) {
    }
  });
  if (st != napi_ok) delete heap;
}

void EngineWrap::begin_pending(Napi::Env env) {
  if (pending_++ == 0) {
    Ref();  // keep the JS object alive while the stream owes it an answer
    tsfn_.Ref(env);
  }
}

// Ends one owed answer when a completion leaves scope, even if settling its promise threw.
struct EngineWrap::PendingScope {
  EngineWrap* w;
  explicit PendingScope(EngineWrap* wrap) : w(wrap) {}
  ~PendingScope() {
    try {
      w->end_pending();
    } catch (...) {  // the environment is shutting down: nothing is kept alive any more anyway
    }
  }
};

void EngineWrap::end_pending() {
  if (--pending_ == 0) {
    tsfn_.Unref(Env());
    Unref();
  }
}

Napi::Value EngineWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (!engine_) return o;
  o.Set("backend", engine_->backend_name());
  o.Set("reason", engine_->backend_reason());
  o.Set("threads", engine_->threads());
  return o;
}

Napi::Value EngineWrap::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !engine_ || engine_->disposed());
}

static latte::Engine& live(std::unique_ptr<latte::Engine>& e) {
  if (!e || e->disposed()) latte::fail(latte::code::kDisposed, "engine is disposed");
  return *e;
}

latte::Engine& EngineWrap::Get(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(v.Env().GetInstanceData<AddonData>()->engine_ctor.Value()))
    latte::fail(latte::code::kArg, "expected a NativeEngine");
  return live(Unwrap(v.As<Napi::Object>())->engine_);
}

Napi::Value EngineWrap::Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::Engine& e = live(engine_);
    if (!info[0].IsTypedArray()) latte::fail(latte::code::kArg, "upload: data must be a typed array");
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    latte::Shape shape = to_shape(info[1]);
    latte::DType dt = to_dtype(info[2]);
    const uint8_t* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    return TensorWrap::New(env, e.upload(dt, shape, p, ta.ByteLength()));
  });
}

Napi::Value EngineWrap::Op(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::Engine& e = live(engine_);
    if (!info[0].IsString()) latte::fail(latte::code::kArg, "op: name must be a string");
    if (!info[1].IsArray()) latte::fail(latte::code::kArg, "op: inputs must be an array");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const latte::OpDef* def = latte::find_op(name);
    if (!def) latte::fail(latte::code::kArg, "unknown op '" + name + "'");
    if (def->in_place()) latte::fail(latte::code::kArg, "op '" + name + "' writes into its operand and is internal to the engine's models");
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<const latte::Tensor*> inputs;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      inputs.push_back(v.IsNull() || v.IsUndefined() ? nullptr : &TensorWrap::Get(v));
    }
    std::vector<latte::Tensor> outs = e.enqueue(def->id, inputs, to_attrs(info[2]));
    Napi::Array res = Napi::Array::New(env, outs.size());
    for (size_t i = 0; i < outs.size(); i++) res.Set(uint32_t(i), TensorWrap::New(env, outs[i]));
    return res;
  });
}

Napi::Value EngineWrap::Reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::Engine& e = live(engine_);
    return TensorWrap::New(env, e.reshape(TensorWrap::Get(info[0]), to_shape(info[1])));
  });
}

Napi::Value EngineWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::Engine& e = live(engine_);
    auto ck = CheckpointWrap::Get(info[0]);
    if (!info[1].IsString()) latte::fail(latte::code::kArg, "load: name must be a string");
    latte::DType as;
    bool has_as = !info[2].IsUndefined() && !info[2].IsNull();
    if (has_as) as = to_dtype(info[2]);
    return TensorWrap::New(env, e.load(ck, info[1].As<Napi::String>().Utf8Value(), has_as ? &as : nullptr));
  });
}

Napi::Value EngineWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::Engine& e = live(engine_);
    const latte::Tensor& t = TensorWrap::Get(info[0]);
    auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
    // count the answer as owed only once the request is queued (read may throw first); the
    // answer itself arrives on this thread later, so the order is safe
    e.read(t, [this, deferred](std::vector<uint8_t>&& bytes, std::exception_ptr err) {
      auto data = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
      post([this, deferred, data, err](Napi::Env env) {
        PendingScope owed(this);
        if (err) {
          deferred->Reject(to_js_error(env, err).Value());
          return;
        }
        Napi::ArrayBuffer ab;
        try {
          ab = Napi::ArrayBuffer::New(env, data->size());
        } catch (const Napi::Error&) {  // V8 could not allocate it: the caller gets E_OOM, not silence
          deferred->Reject(to_js_error(env, std::make_exception_ptr(std::bad_alloc())).Value());
          return;
        }
        if (!data->empty()) std::memcpy(ab.Data(), data->data(), data->size());
        deferred->Resolve(ab);
      });
    });
    begin_pending(env);
    return deferred->Promise();
  });
}

Napi::Value EngineWrap::Fence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::Engine& e = live(engine_);
    auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
    e.fence([this, deferred](std::exception_ptr err) {
      post([this, deferred, err](Napi::Env env) {
        PendingScope owed(this);
        if (err)
          deferred->Reject(to_js_error(env, err).Value());
        else
          deferred->Resolve(env.Undefined());
      });
    });
    begin_pending(env);
    return deferred->Promise();
  });
}

Napi::Value EngineWrap::DropPending(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, double(live(engine_).drop_pending())); });
}

Napi::Value EngineWrap::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
  if (!engine_ || engine_->disposed()) {  // a second dispose is a no-op
    deferred->Resolve(env.Undefined());
    return deferred->Promise();
  }
  bool drop = info.Length() > 0 && info[0].ToBoolean().Value();
  begin_pending(env);
  engine_->dispose(drop, [this, deferred](std::exception_ptr) {
    post([this, deferred](Napi::Env env) {
      engine_->join();
      {
        PendingScope owed(this);
        deferred->Resolve(env.Undefined());
      }
      if (pending_ == 0) release_tsfn();  // nothing can be enqueued any more
    });
  });
  return deferred->Promise();
}

Napi::Value EngineWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (!engine_) return o;
  latte::EngineStats s = engine_->stats();
  o.Set("bytesInUse", double(s.bytes_in_use));
  o.Set("peakBytes", double(s.peak_bytes));
  o.Set("opsEnqueued", double(s.ops_enqueued));
  o.Set("opsRun", double(s.ops_run));
  o.Set("pending", double(s.pending));
  o.Set("programsRecorded", double(s.programs_recorded));
  o.Set("replays", double(s.replays));
  o.Set("capturedLaunches", double(s.captured_launches));
  o.Set("captureFailures", double(s.capture_failures));
  return o;
}

}  // namespace bindings
