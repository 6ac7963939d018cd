// Scaled dot-product attention with GQA, masks and the timestep-conditioned residual (TCRA,
// model.md section 3): S = q k^T * scale; S[:, image cols] += gate[b,h] * R; the post-residual
// image-column logits are written out for the next layer; softmax(S) v.
// Queries are the LAST Sq of the Skv key positions (prefill, decode and image tokens alike).
#include <omp.h>

#include <cmath>

#include "cpu/cpu_kernels.h"
#include "cpu/vec_math.h"

namespace latte::cpu {

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

#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Sq; i++) {
        float* s = scratch + size_t(omp_get_thread_num()) * size_t(Skv);
        const int64_t g = h / rep, qpos = Skv - Sq + i;
        int64_t visible = Skv;  // keys [0, visible)
        if (a.mask == Mask::Causal || (a.mask == Mask::PrefixCausal && qpos < a.prefix_len)) visible = qpos + 1;
        const float* qi = qs + ((b * Sq + i) * H + h) * d;
        const float* kb = ks + (b * Skv * G + g) * d;
        float mx = -INFINITY;
        for (int64_t j = 0; j < visible; j++) {
          const float* kj = kb + j * G * d;
          float dot = 0.f;
#pragma omp simd reduction(+ : dot)
          for (int64_t e = 0; e < d; e++) dot += qi[e] * kj[e];
          float sj = dot * a.scale;
          if (res && j >= c0) sj += gate[b * H + h] * res[((b * H + h) * Sq + i) * Ni + (j - c0)];
          s[j] = sj;
          mx = std::max(mx, sj);
        }
        if (logits) {
          float* li = logits + ((b * H + h) * Sq + i) * Ni;
          for (int64_t j = c0; j < Skv; j++) li[j - c0] = j < visible ? s[j] : -INFINITY;
        }
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < visible; j++) {
          s[j] = vexp(s[j] - mx);
          sum += s[j];
        }
        const float inv = 1.f / sum;
        float* oi = out + ((b * Sq + i) * H + h) * d;
        for (int64_t e = 0; e < d; e++) oi[e] = 0.f;
        const float* vb = vs + (b * Skv * G + g) * d;
        for (int64_t j = 0; j < visible; j++) {
          const float p = s[j] * inv;
          const float* vj = vb + j * G * d;
#pragma omp simd
          for (int64_t e = 0; e < d; e++) oi[e] += p * vj[e];
        }
      }
}

}  // namespace latte::cpu
