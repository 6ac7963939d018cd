// Rotary position embeddings in Hugging Face's rotate_half form: for frequency f < d/2,
//   out[f] = x[f] cos - x[f + d/2] sin,  out[f + d/2] = x[f + d/2] cos + x[f] sin,
// angle = pos[axis(f)] * inv_freq(f). The d/2 frequencies are split into sections; section s reads
// position axis s % A. inv_freq(f) = theta^(-2f/d) (1-D RoPE, Qwen2-VL M-RoPE), or with `restart`
// theta^(-2(f - start_s)/(2 size_s)) (the vision tower's 2-D RoPE: separate row and column halves).
#include <cmath>
#include <vector>

#include "cpu/cpu_kernels.h"

namespace latte::cpu {

void rope(Context& ctx, const RopeArgs& a) {
  const Tensor& x = *a.x;
  const int64_t B = x.shape[0], S = x.shape[1], H = x.shape[2], d = x.shape[3], half = d / 2;
  const int64_t A = a.pos->shape[0];
  const int32_t* pos = a.pos->ptr<int32_t>();
  std::vector<float> inv(static_cast<size_t>(half));
  std::vector<int> axis(static_cast<size_t>(half));
  for (int s = 0, f = 0; s < a.n_sections; s++) {
    for (int j = 0; j < a.sections[s]; j++, f++) {
      float e = a.restart ? float(2 * j) / float(2 * a.sections[s]) : float(2 * f) / float(d);
      inv[size_t(f)] = 1.f / std::pow(a.theta, e);
      axis[size_t(f)] = int(s % A);
    }
  }
  const float* xs = x.f32();
  float* ys = a.out->f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++) {
      float c[512], sn[512];  // head dims up to 1024
      for (int64_t f = 0; f < half; f++) {
        float p = float(pos[(axis[size_t(f)] * B + b) * S + s]);
        float ang = p * inv[size_t(f)];
        c[f] = std::cos(ang);
        sn[f] = std::sin(ang);
      }
      for (int64_t h = 0; h < H; h++) {
        const float* xi = xs + ((b * S + s) * H + h) * d;
        float* yi = ys + ((b * S + s) * H + h) * d;
        for (int64_t f = 0; f < half; f++) {
          float x1 = xi[f], x2 = xi[f + half];
          yi[f] = x1 * c[f] - x2 * sn[f];
          yi[f + half] = x2 * c[f] + x1 * sn[f];
        }
      }
    }
}

}  // namespace latte::cpu
