#include "tensor_wrap.h"

#include "convert.h"

namespace bindings {

Napi::Function TensorWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeTensor",
                                 {InstanceAccessor<&TensorWrap::Shape>("shape"), InstanceAccessor<&TensorWrap::DType>("dtype"),
                                  InstanceAccessor<&TensorWrap::Disposed>("disposed"), InstanceMethod<&TensorWrap::Dispose>("dispose")});
  auto* data = new AddonData();
  data->tensor_ctor = Napi::Persistent(f);
  env.SetInstanceData<AddonData>(data);
  return f;
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {}

Napi::Object TensorWrap::New(Napi::Env env, const latte::Tensor& t) {
  Napi::Object o = env.GetInstanceData<AddonData>()->tensor_ctor.New({});
  Napi::ObjectWrap<TensorWrap>::Unwrap(o)->tensor_ = t;
  return o;
}

const latte::Tensor& TensorWrap::Get(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(v.Env().GetInstanceData<AddonData>()->tensor_ctor.Value()))
    latte::fail(latte::code::kArg, "expected a tensor of this engine");
  TensorWrap* w = Napi::ObjectWrap<TensorWrap>::Unwrap(v.As<Napi::Object>());
  if (!w->tensor_.buf) latte::fail(latte::code::kDisposed, "tensor is disposed");
  return w->tensor_;
}

Napi::Value TensorWrap::Shape(const Napi::CallbackInfo& info) { return from_shape(info.Env(), tensor_.shape); }
Napi::Value TensorWrap::DType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), latte::dtype_name(tensor_.dtype)); }
Napi::Value TensorWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_.buf); }
void TensorWrap::Dispose(const Napi::CallbackInfo&) { tensor_.buf.reset(); }

}  // namespace bindings
