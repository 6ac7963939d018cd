// Module entry: the native contract that lib/native.ts declares.
#include <napi.h>

#include "checkpoint_wrap.h"
#include "convert.h"
#include "dcae_wrap.h"
#include "engine_wrap.h"
#include "generator_wrap.h"
#include "model_wrap.h"
#include "tensor_wrap.h"

namespace bindings {

static Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  latte::BackendInfo b = latte::backend_info();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array compiled = Napi::Array::New(env, b.compiled.size());
  for (size_t i = 0; i < b.compiled.size(); i++) compiled.Set(uint32_t(i), b.compiled[i]);
  o.Set("compiled", compiled);
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", b.cuda_compiled);
  cuda.Set("available", b.cuda_available);
  cuda.Set("reason", b.cuda_reason);
  cuda.Set("device", b.cuda_device);
  o.Set("cuda", cuda);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("avx2", b.cpu.avx2);
  cpu.Set("fma", b.cpu.fma);
  cpu.Set("avx512f", b.cpu.avx512f);
  cpu.Set("avx512bf16", b.cpu.avx512_bf16);
  cpu.Set("amxBf16", b.cpu.amx_bf16);
  cpu.Set("amxPermitted", b.cpu.amx_permitted);
  cpu.Set("cores", b.cores);
  cpu.Set("gemm", b.cpu_gemm);
  o.Set("cpu", cpu);
  return o;
}

// The ops JavaScript may call (every row of core/op_list.h but the in-place ones), in the list's order:
// test/op-list.test.ts checks lib/native.ts's OP_NAMES against it.
static Napi::Value OpNames(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env());
  uint32_t n = 0;
  for (const std::string& name : latte::op_names())
    if (!latte::find_op(name)->in_place()) a.Set(n++, name);
  return a;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeTensor", TensorWrap::Init(env));
  exports.Set("NativeEngine", EngineWrap::Init(env));
  exports.Set("NativeCheckpoint", CheckpointWrap::Init(env));
  exports.Set("NativeQwen2VL", Qwen2VLWrap::Init(env));
  exports.Set("NativeSequence", SequenceWrap::Init(env));
  exports.Set("NativeGenerator", GeneratorWrap::Init(env));
  exports.Set("NativeDcae", DcaeWrap::Init(env));
  exports.Set("openCheckpoint", Napi::Function::New(env, CheckpointWrap::Open));
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo));
  exports.Set("opNames", Napi::Function::New(env, OpNames));
  return exports;
}

}  // namespace bindings

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return bindings::Init(env, exports); }

NODE_API_MODULE(latte_flow, InitModule)
