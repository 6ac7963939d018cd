// What the two attention kernels (attention.cu: f32 SIMT; attention_tc.cu: bf16 tensor cores) share:
// the launch parameters taken from AttentionArgs, and which keys a query sees.
#pragma once
#include "core/backend.h"
#include "cuda/cuda_common.cuh"

namespace latte::cuda {

struct AttentionParams {
  const float *q, *k, *v, *res, *gate;
  float *out, *logits;
  const int32_t* past;        // AttentionArgs::past, read on the device; null: Skv keys
  const int32_t* prompt_len;  // AttentionArgs::prompt_len [B]: keys [prompt_len[b], c0) are padding
  int64_t B, Sq, H, d, Skv, cap, G, rep, c0, Ni, prefix_len;  // cap: k/v rows (their stride)
  float scale;
  int mask;
};

inline AttentionParams attention_params(const AttentionArgs& a) {
  AttentionParams p{};
  p.q = a.q->f32();
  p.k = a.k->f32();
  p.v = a.v->f32();
  p.res = a.residual ? a.residual->f32() : nullptr;
  p.gate = a.gate ? a.gate->f32() : nullptr;
  p.out = a.out->f32();
  p.logits = a.logits ? a.logits->f32() : nullptr;
  p.B = a.q->shape[0];
  p.Sq = a.q->shape[1];
  p.H = a.q->shape[2];
  p.d = a.q->shape[3];
  p.Skv = a.k->shape[1];
  p.cap = a.k->shape[1];
  p.past = a.past ? a.past->ptr<int32_t>() : nullptr;
  p.prompt_len = a.prompt_len ? a.prompt_len->ptr<int32_t>() : nullptr;
  p.G = a.k->shape[2];
  p.rep = p.H / p.G;
  p.c0 = a.image_col0;
  p.Ni = p.Skv - p.c0;
  p.prefix_len = a.prefix_len;
  p.scale = a.scale;
  p.mask = int(a.mask);
  return p;
}

// keys [0, visible) of the Skv that exist are seen by the query at key position qpos (queries are
// the last Sq keys)
__device__ __forceinline__ int64_t attention_visible(const AttentionParams& p, int64_t Skv, int64_t qpos) {
  return p.mask == int(Mask::Causal) || (p.mask == int(Mask::PrefixCausal) && qpos < p.prefix_len) ? qpos + 1 : Skv;
}

}  // namespace latte::cuda
