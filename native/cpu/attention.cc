// Scaled dot-product attention with GQA, masks and the timestep-conditioned residual (TCRA,
// model.md section 3): S = q k^T * scale; S[:, image cols] += gate[b,h] * R; the post-residual
// image-column logits are written out for the next layer; softmax(S) v.
// Queries are the LAST Sq of the Skv key positions (prefill, decode and image tokens alike).
#include <omp.h>

#include <cmath>

#include "cpu/cpu_kernels.h"
#include "cpu/vec_math.h"

namespace latte::cpu {
namespace {

// One query row's scores against keys [0, n) of K^T [d][ldk], 32 keys per register tile: no horizontal
// sum per dot product, and the tile's partial sums stay in registers across the d loop.
[[gnu::always_inline]] inline void scores_transposed(const float* qi, const float* kt, int64_t ldk, int64_t d, int64_t n, float scale, float* s) {
  int64_t j0 = 0;
  for (; j0 + 32 <= n; j0 += 32) {
    float acc[32] = {};
    for (int64_t e = 0; e < d; e++) {
      const float qe = qi[e];
      const float* kr = kt + e * ldk + j0;
#pragma omp simd
      for (int l = 0; l < 32; l++) acc[l] += qe * kr[l];
    }
#pragma omp simd
    for (int l = 0; l < 32; l++) s[j0 + l] = acc[l] * scale;
  }
  for (; j0 < n; j0++) {
    float dot = 0.f;
    for (int64_t e = 0; e < d; e++) dot += qi[e] * kt[e * ldk + j0];
    s[j0] = dot * scale;
  }
}

// o = inv * sum_j p[j] v_j, with the accumulator in registers for the usual head sizes.
template <int D>
[[gnu::always_inline]] inline void weighted_values(const float* p, const float* vb, int64_t ldv, int64_t n, float inv, float* o) {
  float acc[D] = {};
  for (int64_t j = 0; j < n; j++) {
    const float pj = p[j];
    const float* vj = vb + j * ldv;
#pragma omp simd
    for (int e = 0; e < D; e++) acc[e] += pj * vj[e];
  }
#pragma omp simd
  for (int e = 0; e < D; e++) o[e] = acc[e] * inv;
}

[[gnu::always_inline]] inline void weighted_values_any(const float* p, const float* vb, int64_t ldv, int64_t n, int64_t d, float inv, float* o) {
  switch (d) {
    case 16: return weighted_values<16>(p, vb, ldv, n, inv, o);
    case 32: return weighted_values<32>(p, vb, ldv, n, inv, o);
    case 64: return weighted_values<64>(p, vb, ldv, n, inv, o);
    case 128: return weighted_values<128>(p, vb, ldv, n, inv, o);
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

LATTE_MULTIVERSION void attention(const AttentionArgs& a, Arena& arena) {
  const Tensor &q = *a.q, &k = *a.k, &v = *a.v;
  const int64_t B = q.shape[0], Sq = q.shape[1], H = q.shape[2], d = q.shape[3];
  const int64_t Skv = k.shape[1], G = k.shape[2], rep = H / G;
  const int64_t c0 = a.image_col0, Ni = Skv - c0;
  const float *qs = q.f32(), *ks = k.f32(), *vs = v.f32();
  const float* res = a.residual ? a.residual->f32() : nullptr;
  const float* gate = a.gate ? a.gate->f32() : nullptr;
  float* logits = a.logits ? a.logits->f32() : nullptr;
  float* out = a.out->f32();
  const int nthreads = omp_get_max_threads();
  float* scratch = arena.take_n<float>(size_t(nthreads) * size_t(Skv));
  // With several query rows per head, K is transposed once per (batch, kv head) to [d][Skv]: the score
  // loop then runs over keys, 8 wide, with no horizontal sum per dot product (short heads, d = 16-32,
  // spent most of their time in those sums). One decode row reads K directly: a transpose would
  // double its memory traffic.
  const bool transposed = Sq >= 4;
  float* kt = nullptr;
  if (transposed) {
    kt = arena.take_n<float>(size_t(B * G * d * Skv));
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
      for (int64_t g = 0; g < G; g++) {
        float* dst = kt + (b * G + g) * d * Skv;
        for (int64_t j = 0; j < Skv; j++) {
          const float* kj = ks + ((b * Skv + j) * G + g) * d;
          for (int64_t e = 0; e < d; e++) dst[e * Skv + j] = kj[e];
        }
      }
  }

#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Sq; i++) {
        float* s = scratch + size_t(omp_get_thread_num()) * size_t(Skv);
        const int64_t g = h / rep, qpos = Skv - Sq + i;
        int64_t visible = Skv;  // keys [0, visible)
        if (a.mask == Mask::Causal || (a.mask == Mask::PrefixCausal && qpos < a.prefix_len)) visible = qpos + 1;
        const float* qi = qs + ((b * Sq + i) * H + h) * d;
        if (transposed) {
          scores_transposed(qi, kt + (b * G + g) * d * Skv, Skv, d, visible, a.scale, s);
        } else {
          const float* kb = ks + (b * Skv * G + g) * d;
          for (int64_t j = 0; j < visible; j++) {
            const float* kj = kb + j * G * d;
            float dot = 0.f;
#pragma omp simd reduction(+ : dot)
            for (int64_t e = 0; e < d; e++) dot += qi[e] * kj[e];
            s[j] = dot * a.scale;
          }
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
        weighted_values_any(s, vs + (b * Skv * G + g) * d, G * d, visible, d, 1.f / sum, out + ((b * Sq + i) * H + h) * d);
      }
}

}  // namespace latte::cpu
