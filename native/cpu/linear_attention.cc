// DC-AE's ReLU linear attention (diffusers SanaMultiscaleLinearAttention), per image and head over
// the N = H*W pixels: q = relu(Q), k = relu(K), then either
//   N > d:  o = ([v; 1] k^T) q, out = o[:d] / (o[d] + eps)     (linear in N)
//   N <= d: s = k^T q, s /= (column sums + eps), out = v s     (the quadratic form diffusers uses)
// Channel layout of qkv: head h owns the consecutive channels [3dh, 3dh + 3d) as (q, k, v).
#include <vector>

#include "cpu/cpu_kernels.h"

namespace latte::cpu {

void relu_linear_attention(Context& ctx, const Tensor& qkv, int d, float eps, Tensor& y) {
  const int64_t B = qkv.shape[0], heads = qkv.shape[1] / (3 * d), N = qkv.shape[2] * qkv.shape[3];
  const float* src = qkv.f32();
  float* dst = y.f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < heads; h++) {
      const float* base = src + (b * heads + h) * 3 * d * N;
      float* out = dst + (b * heads + h) * d * N;
      std::vector<float> q(size_t(d * N)), k(size_t(d * N));
      for (int64_t i = 0; i < d * N; i++) {
        q[size_t(i)] = std::max(base[i], 0.f);
        k[size_t(i)] = std::max(base[d * N + i], 0.f);
      }
      const float* v = base + 2 * d * N;
      if (N > d) {
        std::vector<double> vk(size_t((d + 1) * d), 0.0);  // [d + 1, d]: v with a row of ones, times k^T
        for (int64_t i = 0; i <= d; i++)
          for (int64_t j = 0; j < d; j++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += double(i < d ? v[i * N + n] : 1.f) * k[size_t(j * N + n)];
            vk[size_t(i * d + j)] = s;
          }
        for (int64_t n = 0; n < N; n++) {
          double den = 0;
          for (int64_t j = 0; j < d; j++) den += vk[size_t(d * d + j)] * q[size_t(j * N + n)];
          for (int64_t i = 0; i < d; i++) {
            double num = 0;
            for (int64_t j = 0; j < d; j++) num += vk[size_t(i * d + j)] * q[size_t(j * N + n)];
            out[i * N + n] = float(num / (den + eps));
          }
        }
      } else {
        std::vector<double> s(size_t(N * N));  // [keys, queries]
        for (int64_t m = 0; m < N; m++)
          for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t j = 0; j < d; j++) acc += double(k[size_t(j * N + m)]) * q[size_t(j * N + n)];
            s[size_t(m * N + n)] = acc;
          }
        for (int64_t n = 0; n < N; n++) {
          double col = 0;
          for (int64_t m = 0; m < N; m++) col += s[size_t(m * N + n)];
          for (int64_t m = 0; m < N; m++) s[size_t(m * N + n)] /= col + eps;
        }
        for (int64_t i = 0; i < d; i++)
          for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t m = 0; m < N; m++) acc += double(v[i * N + m]) * s[size_t(m * N + n)];
            out[i * N + n] = float(acc);
          }
      }
    }
}

}  // namespace latte::cpu
