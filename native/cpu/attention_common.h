// What attention.cc's two paths share: the call's dimensions, which keys a query row sees, and K
// transposed per (batch, kv head). attention.cc keeps the row-at-a-time path (decode, short query
// runs, head dims that are not a multiple of 8); flash_attention.cc the tiled one for long runs.
#pragma once
#include <cstdint>

#include "cpu/cpu_kernels.h"

namespace latte::cpu {

struct AttentionDims {
  int64_t B, Sq, H, d;
  int64_t cap;  // rows k/v have room for (their stride)
  int64_t G, rep;
  int64_t Skv;  // keys that exist (a cache's current length: past + Sq)
  int64_t c0, Ni;  // the image block: first key column and its width
};

// Reads `past` (throws E_INDEX when the keys do not fit the rows of k/v).
AttentionDims attention_dims(const AttentionArgs& a);

// Keys [0, visible) for query row i: queries are the last Sq of the Skv key positions.
inline int64_t visible_keys(const AttentionArgs& a, const AttentionDims& m, int64_t i) {
  const int64_t qpos = m.Skv - m.Sq + i;
  if (a.mask == Mask::Causal || (a.mask == Mask::PrefixCausal && qpos < a.prefix_len)) return qpos + 1;
  return m.Skv;
}

// Keys [0, prompt_len[b]) and the image block are real; [prompt_len[b], c0) is padding (clamped).
inline int64_t prompt_end(const int32_t* plen, const AttentionDims& m, int64_t b) {
  if (!plen) return m.c0;
  const int64_t p = plen[b] < 0 ? 0 : plen[b];
  return p < m.c0 ? p : m.c0;
}

// K of (batch b, kv head g) as [d][ldk] at dst, zero from Skv to ldk: score loops then run over
// keys, 8 wide, with no horizontal sum per dot product, and every tile is whole. ldk is a multiple
// of 16.
void transpose_keys(const float* k, const AttentionDims& m, int64_t ldk, int64_t b, int64_t g, float* dst);

// The tiled path: handles any call whose d is a multiple of 8.
void flash_attention(Context& ctx, const AttentionArgs& a, const AttentionDims& m);

}  // namespace latte::cpu
