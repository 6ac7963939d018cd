#include "model_wrap.h"

#include "checkpoint_wrap.h"
#include "convert.h"
#include "engine_wrap.h"
#include "tensor_wrap.h"

namespace bindings {

using latte::fail;
using latte::code::kArg;

Napi::Function SequenceWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeSequence",
                                 {InstanceAccessor<&SequenceWrap::Length>("length"), InstanceMethod<&SequenceWrap::Release>("release"),
                                  InstanceMethod<&SequenceWrap::Assign>("assign")});
  env.GetInstanceData<AddonData>()->sequence_ctor = Napi::Persistent(f);
  return f;
}

latte::model::KvCache& SequenceWrap::Get(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(v.Env().GetInstanceData<AddonData>()->sequence_ctor.Value()))
    fail(kArg, "expected a sequence from newSequence()");
  return Unwrap(v.As<Napi::Object>())->cache_;
}

Napi::Value SequenceWrap::Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(cache_.length)); }

void SequenceWrap::Release(const Napi::CallbackInfo&) { cache_ = latte::model::KvCache{}; }

void SequenceWrap::Assign(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] {
    if (!info[0].IsArray() || !info[1].IsArray()) fail(kArg, "assign: keys and values must be arrays of tensors");
    Napi::Array ks = info[0].As<Napi::Array>(), vs = info[1].As<Napi::Array>();
    if (ks.Length() == 0 || ks.Length() != vs.Length()) fail(kArg, "assign: one key and one value tensor per layer");
    latte::model::KvCache c;
    for (uint32_t i = 0; i < ks.Length(); i++) {
      const latte::Tensor& k = TensorWrap::Get(ks.Get(i));
      const latte::Tensor& v = TensorWrap::Get(vs.Get(i));
      if (k.dtype != latte::DType::F32 || k.shape.ndim != 4 || k.shape[0] != 1 || k.shape != v.shape || v.dtype != k.dtype || (i && k.shape != c.k[0].shape))
        fail(latte::code::kShape, "assign: every layer's k and v must be f32 [1, P, G, d] of one shape, got " + k.desc() + " and " + v.desc());
      c.k.push_back(k);
      c.v.push_back(v);
    }
    c.length = c.k[0].shape[1];
    cache_ = std::move(c);
  });
}

Napi::Function Qwen2VLWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeQwen2VL",
                     {InstanceAccessor<&Qwen2VLWrap::Config>("config"), InstanceMethod<&Qwen2VLWrap::EncodeImage>("encodeImage"),
                      InstanceMethod<&Qwen2VLWrap::NewSequence>("newSequence"), InstanceMethod<&Qwen2VLWrap::Prefill>("prefill"),
                      InstanceMethod<&Qwen2VLWrap::Decode>("decode"), InstanceMethod<&Qwen2VLWrap::EncodePrompt>("encodePrompt"),
                      InstanceMethod<&Qwen2VLWrap::UsePrograms>("usePrograms")});
}

Qwen2VLWrap::Qwen2VLWrap(const Napi::CallbackInfo& info)
    : WrappedModel(info, "the model", [&](latte::Engine& e, std::shared_ptr<latte::io::Checkpoint> ck, const latte::model::Qwen2VLConfig& cfg) {
        return std::make_unique<latte::model::Qwen2VL>(e, std::move(ck), cfg, to_dtype(info[3]));
      }) {}

Napi::Value Qwen2VLWrap::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const auto& c = model().config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("hiddenSize", c.text.hidden_size);
    o.Set("layers", c.text.num_layers);
    o.Set("vocabSize", c.text.vocab_size);
    o.Set("maxPositions", c.text.max_positions);
    o.Set("imageTokenId", c.image_token_id);
    o.Set("visionStartTokenId", c.vision_start_token_id);
    o.Set("mergeSize", c.vision.spatial_merge_size);
    o.Set("patchSize", c.vision.patch_size);
    o.Set("temporalPatchSize", c.vision.temporal_patch_size);
    o.Set("visionDepth", c.vision.depth);
    return o;
  });
}

Napi::Value Qwen2VLWrap::EncodeImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const latte::Tensor& px = TensorWrap::Get(info[0]);
    return TensorWrap::New(env, model().encode_image(px, int_arg(info[1], "t"), int_arg(info[2], "h"), int_arg(info[3], "w")));
  });
}

// newSequence(capacity?): with a capacity, the keys/values are preallocated (Qwen2VL::reserve)
Napi::Value Qwen2VLWrap::NewSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto& m = model();
    Napi::Object seq = env.GetInstanceData<AddonData>()->sequence_ctor.New({});
    if (!info[0].IsUndefined()) m.reserve(SequenceWrap::Get(seq), int_arg(info[0], "capacity"));
    return seq;
  });
}

void Qwen2VLWrap::UsePrograms(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] {
    if (!info[0].IsBoolean()) fail(kArg, "usePrograms: expected a boolean");
    model().use_programs(info[0].As<Napi::Boolean>().Value());
  });
}

Napi::Value Qwen2VLWrap::Prefill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::model::KvCache& seq = SequenceWrap::Get(info[0]);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) fail(kArg, "prefill: ids must be an Int32Array");
    Napi::Int32Array ids = info[1].As<Napi::Int32Array>();
    if (!info[2].IsArray()) fail(kArg, "prefill: images must be an array of tensors");
    Napi::Array arr = info[2].As<Napi::Array>();
    std::vector<latte::Tensor> images;
    for (uint32_t i = 0; i < arr.Length(); i++) images.push_back(TensorWrap::Get(arr.Get(i)));
    const latte::Tensor& pos = TensorWrap::Get(info[3]);
    bool all_rows = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
    auto& m = model();
    latte::Tensor x = m.embed_prompt(std::vector<int32_t>(ids.Data(), ids.Data() + ids.ElementLength()), images);
    return TensorWrap::New(env, m.forward(seq, x, pos, all_rows));
  });
}

Napi::Value Qwen2VLWrap::Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::model::KvCache& seq = SequenceWrap::Get(info[0]);
    const latte::Tensor& token = TensorWrap::Get(info[1]);
    return TensorWrap::New(env, model().decode(seq, token, int_arg(info[2], "position")));
  });
}

Napi::Value Qwen2VLWrap::EncodePrompt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::model::KvCache& seq = SequenceWrap::Get(info[0]);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) fail(kArg, "encodePrompt: ids must be an Int32Array");
    Napi::Int32Array ids = info[1].As<Napi::Int32Array>();
    const latte::Tensor& pos = TensorWrap::Get(info[2]);
    auto& m = model();
    latte::Tensor x = m.embed_prompt(std::vector<int32_t>(ids.Data(), ids.Data() + ids.ElementLength()), {});
    return TensorWrap::New(env, m.encode_prompt(seq, x, pos, int(int_arg(info[3], "layers"))));
  });
}

}  // namespace bindings
