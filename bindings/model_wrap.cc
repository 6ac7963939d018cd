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
                                 {InstanceAccessor<&SequenceWrap::Length>("length"), InstanceAccessor<&SequenceWrap::Position>("position"),
                                  InstanceMethod<&SequenceWrap::Release>("release"), InstanceMethod<&SequenceWrap::Assign>("assign")});
  env.GetInstanceData<AddonData>()->sequence_ctor = Napi::Persistent(f);
  return f;
}

latte::model::KvCache& SequenceWrap::Get(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(v.Env().GetInstanceData<AddonData>()->sequence_ctor.Value()))
    fail(kArg, "expected a sequence from newSequence()");
  return Unwrap(v.As<Napi::Object>())->cache_;
}

Napi::Value SequenceWrap::Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(cache_.length)); }
Napi::Value SequenceWrap::Position(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(cache_.next_position())); }

void SequenceWrap::Release(const Napi::CallbackInfo&) { cache_ = latte::model::KvCache{}; }

void SequenceWrap::Assign(const Napi::CallbackInfo& info) {
  guarded(info.Env(), [&] {
    if (!info[0].IsArray() || !info[1].IsArray()) fail(kArg, "assign: keys and values must be arrays of tensors");
    Napi::Array ks = info[0].As<Napi::Array>(), vs = info[1].As<Napi::Array>();
    std::vector<latte::Tensor> k, v;
    for (uint32_t i = 0; i < ks.Length(); i++) k.push_back(TensorWrap::Get(ks.Get(i)));
    for (uint32_t i = 0; i < vs.Length(); i++) v.push_back(TensorWrap::Get(vs.Get(i)));
    cache_ = latte::model::KvCache::assigned(std::move(k), std::move(v));
  });
}

Napi::Function Qwen2VLWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeQwen2VL",
                     {InstanceAccessor<&Qwen2VLWrap::Config>("config"), InstanceMethod<&Qwen2VLWrap::EncodeImage>("encodeImage"),
                      InstanceMethod<&Qwen2VLWrap::NewSequence>("newSequence"), InstanceMethod<&Qwen2VLWrap::Prefill>("prefill"),
                      InstanceMethod<&Qwen2VLWrap::Sample>("sample"), InstanceMethod<&Qwen2VLWrap::Decode>("decode"),
                      InstanceMethod<&Qwen2VLWrap::DecodeBatch>("decodeBatch"),
                      InstanceMethod<&Qwen2VLWrap::EncodePrompt>("encodePrompt"), InstanceMethod<&Qwen2VLWrap::UsePrograms>("usePrograms")});
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
    auto pos = i32_arg(info[4], "encodeImage: patch positions");
    return TensorWrap::New(env, model().encode_image(px, int_arg(info[1], "t"), int_arg(info[2], "h"), int_arg(info[3], "w"), pos));
  });
}

// newSequence(capacity?, sampling?): with a capacity, the keys/values are preallocated (Qwen2VL::reserve)
Napi::Value Qwen2VLWrap::NewSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto& m = model();
    Napi::Object seq = env.GetInstanceData<AddonData>()->sequence_ctor.New({});
    latte::model::KvCache& cache = SequenceWrap::Get(seq);
    if (!info[0].IsUndefined()) m.reserve(cache, int_arg(info[0], "capacity"));
    if (!info[1].IsUndefined()) {
      const latte::OpAttrs a = to_attrs(info[1]);  // the sample op's own names: temperature, topK, topP, seed
      m.set_sampling(cache, {a.temperature, a.top_k, a.top_p, a.seed});
    }
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
    auto ids = i32_arg(info[1], "prefill: ids");
    if (!info[2].IsArray()) fail(kArg, "prefill: images must be an array of tensors");
    Napi::Array arr = info[2].As<Napi::Array>();
    std::vector<latte::Tensor> images;
    for (uint32_t i = 0; i < arr.Length(); i++) images.push_back(TensorWrap::Get(arr.Get(i)));
    auto pos = i32_arg(info[3], "prefill: positions");
    bool all_rows = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
    return TensorWrap::New(env, model().prefill(seq, ids, images, pos, all_rows));
  });
}

Napi::Value Qwen2VLWrap::Sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::model::KvCache& seq = SequenceWrap::Get(info[0]);
    return TensorWrap::New(env, model().sample(seq, TensorWrap::Get(info[1])));
  });
}

Napi::Value Qwen2VLWrap::DecodeBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsArray()) fail(kArg, "decodeBatch: sequences must be an array");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<latte::model::KvCache*> seqs;
    for (uint32_t i = 0; i < arr.Length(); i++) seqs.push_back(&SequenceWrap::Get(arr.Get(i)));
    return TensorWrap::New(env, model().decode_batch(seqs, TensorWrap::Get(info[1])));
  });
}

Napi::Value Qwen2VLWrap::Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::model::KvCache& seq = SequenceWrap::Get(info[0]);
    const latte::Tensor& token = TensorWrap::Get(info[1]);
    const bool with_logits = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    auto out = model().decode(seq, token);
    if (!with_logits) return TensorWrap::New(env, out.token);
    Napi::Array both = Napi::Array::New(env, 2);
    both.Set(uint32_t(0), TensorWrap::New(env, out.token));
    both.Set(uint32_t(1), TensorWrap::New(env, out.logits));
    return both;
  });
}

Napi::Value Qwen2VLWrap::EncodePrompt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    latte::model::KvCache& seq = SequenceWrap::Get(info[0]);
    auto ids = i32_arg(info[1], "encodePrompt: ids");
    auto pos = i32_arg(info[2], "encodePrompt: positions");
    return TensorWrap::New(env, model().encode_prompt(seq, ids, pos, int(int_arg(info[3], "layers"))));
  });
}

}  // namespace bindings
