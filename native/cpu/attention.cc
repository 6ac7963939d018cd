// Scaled dot-product attention with GQA, masks and the timestep-conditioned residual (TCRA,
// docs/model.md section 3): S = q k^T * scale; S[:, image cols] += gate[b,h] * R; the post-residual
// image-column logits are written out for the next layer; softmax(S) v.
// Queries are the LAST Sq of the Skv key positions (prefill, decode and image tokens alike).
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/attention_common.h"
#include "cpu/vec_math.h"

namespace latte::cpu {
namespace {

constexpr int64_t kTiledRows = 16;  // query rows from which the tiled path (flash_attention.cc) runs

// GCC vector type: 8 floats, compiled to AVX(2/512) or SSE pairs per clone; locals of this type stay in
// registers (a float[32] accumulator was spilled to the stack on every key tile).
typedef float v8f __attribute__((vector_size(32)));

// One query row's scores against keys [0, n) of K^T [d][ldk], 32 keys per register tile: no horizontal
// sum per dot product. ldk is a multiple of 32 and the padding columns are zero, so every tile is whole
// (scores past n are computed and ignored); kt and s are 32-byte aligned.
[[gnu::always_inline]] inline void scores_transposed(const float* qi, const float* kt, int64_t ldk, int64_t d, int64_t n, float scale, float* s) {
  for (int64_t j0 = 0; j0 < n; j0 += 32) {
    v8f a0 = {}, a1 = {}, a2 = {}, a3 = {};
    const float* kr = kt + j0;
    for (int64_t e = 0; e < d; e++, kr += ldk) {
      const float qe = qi[e];
      const v8f q = {qe, qe, qe, qe, qe, qe, qe, qe};
      a0 += q * *reinterpret_cast<const v8f*>(kr);
      a1 += q * *reinterpret_cast<const v8f*>(kr + 8);
      a2 += q * *reinterpret_cast<const v8f*>(kr + 16);
      a3 += q * *reinterpret_cast<const v8f*>(kr + 24);
    }
    v8f* o = reinterpret_cast<v8f*>(s + j0);
    o[0] = a0 * scale;
    o[1] = a1 * scale;
    o[2] = a2 * scale;
    o[3] = a3 * scale;
  }
}

[[gnu::always_inline]] inline v8f load8(const float* p) {
  v8f x;
  __builtin_memcpy(&x, p, sizeof x);
  return x;
}

// o = inv * sum_j p[j] v_j for d = 8 NV. U keys are in flight at once, each with its own accumulators:
// with one set, every FMA waited for the previous key's (the loop was latency-bound at d = 16).
template <int NV, int U>
[[gnu::always_inline]] inline void weighted_values(const float* p, const float* vb, int64_t ldv, int64_t n, float inv, float* o) {
  v8f acc[U][NV] = {};
  int64_t j = 0;
  for (; j + U <= n; j += U)
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) {
      const float pj = p[j + u];
      const v8f pv = {pj, pj, pj, pj, pj, pj, pj, pj};
      const float* vj = vb + (j + u) * ldv;
#pragma GCC unroll 16
      for (int c = 0; c < NV; c++) acc[u][c] += pv * load8(vj + 8 * c);
    }
  for (; j < n; j++) {
    const float pj = p[j];
    const v8f pv = {pj, pj, pj, pj, pj, pj, pj, pj};
#pragma GCC unroll 16
    for (int c = 0; c < NV; c++) acc[0][c] += pv * load8(vb + j * ldv + 8 * c);
  }
#pragma GCC unroll 16
  for (int c = 0; c < NV; c++) {
    v8f sum = acc[0][c];
#pragma GCC unroll 8
    for (int u = 1; u < U; u++) sum += acc[u][c];
    sum *= inv;
    __builtin_memcpy(o + 8 * c, &sum, sizeof sum);
  }
}

[[gnu::always_inline]] inline void weighted_values_any(const float* p, const float* vb, int64_t ldv, int64_t n, int64_t d, float inv, float* o) {
  switch (d) {
    case 16: return weighted_values<2, 4>(p, vb, ldv, n, inv, o);
    case 32: return weighted_values<4, 2>(p, vb, ldv, n, inv, o);
    case 64: return weighted_values<8, 1>(p, vb, ldv, n, inv, o);
    case 128: return weighted_values<16, 1>(p, vb, ldv, n, inv, o);
    default: break;
  }
  for (int64_t e = 0; e < d; e++) o[e] = 0.f;
  for (int64_t j = 0; j < n; j++) {
    const float pj = p[j];
    const float* vj = vb + j * ldv;
#pragma omp simd
    for (int64_t e = 0; e < d; e++) o[e] += pj * vj[e];
  }
  for (int64_t e = 0; e < d; e++) o[e] *= inv;
}

}  // namespace

AttentionDims attention_dims(const AttentionArgs& a) {
  const Tensor &q = *a.q, &k = *a.k;
  AttentionDims m{};
  m.B = q.shape[0], m.Sq = q.shape[1], m.H = q.shape[2], m.d = q.shape[3];
  m.cap = k.shape[1], m.G = k.shape[2], m.rep = m.H / m.G;
  m.Skv = a.past ? int64_t(*a.past->ptr<int32_t>()) + m.Sq : m.cap;
  if (m.Skv < m.Sq || m.Skv > m.cap)
    fail(code::kIndex, "attention: past " + std::to_string(m.Skv - m.Sq) + " keys and " + std::to_string(m.Sq) + " queries do not fit the " + std::to_string(m.cap) + " rows of k/v");
  m.c0 = a.image_col0, m.Ni = m.Skv - m.c0;
  return m;
}

void transpose_keys(const float* ks, const AttentionDims& m, int64_t ldk, int64_t b, int64_t g, float* dst) {
  const int64_t G = m.G, d = m.d;
  const float* src = ks + (b * m.cap * G + g) * d;
  // 16 keys at a time, so each write fills a cache line: one key at a time wrote d lines 4 KiB apart
  // (one L1 set) per key, a sixth of the tiled kernel's time at 1024 keys
  for (int64_t j0 = 0; j0 < ldk; j0 += 16) {
    const int64_t n = std::max<int64_t>(0, std::min<int64_t>(16, m.Skv - j0));
    for (int64_t e = 0; e < d; e++) {
      float* de = dst + e * ldk + j0;
      for (int64_t j = 0; j < n; j++) de[j] = src[(j0 + j) * G * d + e];
      for (int64_t j = n; j < 16; j++) de[j] = 0.f;
    }
  }
}

LATTE_MULTIVERSION void attention(Context& ctx, const AttentionArgs& a) {
  ArenaReset reset{ctx.arena};
  Arena& arena = ctx.arena;
  const AttentionDims m = attention_dims(a);
  // A run of query rows long enough to fill the tiles takes the tiled path; decode and a few rows
  // stay here, where one score row per query costs less than tiling them.
  if (m.Sq >= kTiledRows && m.d % 8 == 0) return flash_attention(ctx, a, m);
  const int64_t B = m.B, Sq = m.Sq, H = m.H, d = m.d, cap = m.cap, G = m.G, rep = m.rep, Skv = m.Skv;
  const int64_t c0 = m.c0, Ni = m.Ni;
  const float *qs = a.q->f32(), *ks = a.k->f32(), *vs = a.v->f32();
  const float* res = a.residual ? a.residual->f32() : nullptr;
  const float* gate = a.gate ? a.gate->f32() : nullptr;
  const int32_t* plen = a.prompt_len ? a.prompt_len->ptr<int32_t>() : nullptr;
  float* logits = a.logits ? a.logits->f32() : nullptr;
  float* out = a.out->f32();
  const int nthreads = omp_get_max_threads();
  const int64_t ldk = (Skv + 31) & ~int64_t(31);  // K^T row length and score row length: whole 32-key tiles
  float* scratch = arena.take_n<float>(size_t(nthreads) * size_t(ldk));
  // With several query rows per head, K is transposed once per (batch, kv head): the score loop then
  // runs over keys with no horizontal sum per dot product (short heads, d = 16-32, spent most of
  // their time in those sums). One decode row reads K directly: a transpose would double its memory
  // traffic.
  const bool transposed = Sq >= 4;
  float* kt = nullptr;
  if (transposed) {
    kt = arena.take_n<float>(size_t(B * G * d * ldk));
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
      for (int64_t g = 0; g < G; g++) transpose_keys(ks, m, ldk, b, g, kt + (b * G + g) * d * ldk);
  }

#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Sq; i++) {
        float* s = scratch + size_t(omp_get_thread_num()) * size_t(ldk);
        const int64_t g = h / rep, visible = visible_keys(a, m, i);  // keys [0, visible)
        const float* qi = qs + ((b * Sq + i) * H + h) * d;
        if (transposed) {
          scores_transposed(qi, kt + (b * G + g) * d * ldk, ldk, d, visible, a.scale, s);
        } else {
          const float* kb = ks + (b * cap * G + g) * d;
          for (int64_t j = 0; j < visible; j++) {
            const float* kj = kb + j * G * d;
            float dot = 0.f;
#pragma omp simd reduction(+ : dot)
            for (int64_t e = 0; e < d; e++) dot += qi[e] * kj[e];
            s[j] = dot * a.scale;
          }
        }
        if (plen) {  // padding between this row's prompt and the image block: never attended to
          const int64_t p0 = prompt_end(plen, m, b);
          for (int64_t j = p0; j < std::min(c0, visible); j++) s[j] = -INFINITY;
        }
        if (res && c0 < visible) {
          const float gh = gate[b * H + h];
          const float* ri = res + ((b * H + h) * Sq + i) * Ni;
#pragma omp simd
          for (int64_t j = c0; j < visible; j++) s[j] += gh * ri[j - c0];
        }
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < visible; j++) mx = std::max(mx, s[j]);
        if (logits) {
          float* li = logits + ((b * H + h) * Sq + i) * Ni;
          for (int64_t j = c0; j < Skv; j++) li[j - c0] = j < visible ? s[j] : -INFINITY;
        }
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < visible; j++) {
          const float ej = vexp(s[j] - mx);
          s[j] = ej;
          sum += ej;
        }
        weighted_values_any(s, vs + (b * cap * G + g) * d, G * d, visible, d, 1.f / sum, out + ((b * Sq + i) * H + h) * d);
      }
}

}  // namespace latte::cpu
