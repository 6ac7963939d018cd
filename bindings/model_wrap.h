// JS face of the engine's models: NativeQwen2VL (understanding) and the KV-cache sequences it
// fills. Every method enqueues on the model's engine and returns tensors at once.
#pragma once
#include <napi.h>

#include <memory>

#include "model/qwen2vl.h"
#include "wrapped_model.h"

namespace bindings {

class SequenceWrap : public Napi::ObjectWrap<SequenceWrap> {
 public:
  static const latte::model::KvCache& Cache(const Napi::Value& v) { return Get(v); }
  static Napi::Function Init(Napi::Env env);
  static latte::model::KvCache& Get(const Napi::Value& v);
  explicit SequenceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SequenceWrap>(info) {}

 private:
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Position(const Napi::CallbackInfo& info);  // the M-RoPE position of the next token
  void Release(const Napi::CallbackInfo& info);  // frees the cache's tensors now
  // (ks[], vs[]): per-layer K/V [1, P, G, d] computed elsewhere (e.g. a reference fixture, a benchmark)
  void Assign(const Napi::CallbackInfo& info);
  latte::model::KvCache cache_;
};

class Qwen2VLWrap : public WrappedModel<Qwen2VLWrap, latte::model::Qwen2VL, latte::model::Qwen2VLConfig> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Qwen2VLWrap(const Napi::CallbackInfo& info);  // (engine, checkpoint, readConfig(path), 'f32' | 'bf16')

 private:
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value EncodeImage(const Napi::CallbackInfo& info);  // (pixels, t, h, w, patchPositions Int32Array) -> embeddings
  Napi::Value NewSequence(const Napi::CallbackInfo& info);  // (capacity?, sampling?) -> sequence
  Napi::Value Prefill(const Napi::CallbackInfo& info);  // (seq, ids Int32Array, images[], positions Int32Array, allRows) -> logits
  Napi::Value Sample(const Napi::CallbackInfo& info);   // (seq, logits [1, V]) -> the sequence's next token
  Napi::Value Decode(const Napi::CallbackInfo& info);   // (seq, token, withLogits?) -> next token (and logits [1, V])
  Napi::Value DecodeBatch(const Napi::CallbackInfo& info);  // ([seq...], tokens i32 [M]) -> each one's next token, i32 [M]
  Napi::Value EncodePrompt(const Napi::CallbackInfo& info);  // (seq, ids, positions Int32Array, layers) -> hidden
  void UsePrograms(const Napi::CallbackInfo& info);         // (on): decode replays one recorded step
};

}  // namespace bindings
