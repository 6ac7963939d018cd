// Normalisations, computed in f32 in the order Hugging Face / diffusers use:
// RMSNorm: (x * rsqrt(mean(x^2) + eps)) * w (+ b); LayerNorm: (x - mean) * rsqrt(var + eps) * w + b.
// Row sums are taken in double with SIMD partial sums: a serial double sum was one add per 4 cycles
// (a dependency chain), 5% of a small generator step; the order changes the double sum only in its
// last digits.
#include <algorithm>
#include <cmath>

#include "cpu/cpu_kernels.h"
#include "cpu/vec_math.h"

namespace latte::cpu {

LATTE_MULTIVERSION void rms_norm(Context& ctx, const Tensor& x, const Tensor* w, const Tensor* b, float eps, bool channels, Tensor& y) {
  const float* xs = x.f32();
  float* ys = y.f32();
  const float* ws = w ? w->f32() : nullptr;
  const float* bs = b ? b->f32() : nullptr;
  if (!channels) {
    const int64_t rows = x.shape.rows(), n = x.shape[-1];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float* xi = xs + r * n;
      float* yi = ys + r * n;
      double ss = 0.0;
#pragma omp simd reduction(+ : ss)
      for (int64_t j = 0; j < n; j++) ss += double(xi[j]) * xi[j];
      float inv = 1.f / std::sqrt(float(ss / double(n)) + eps);
      for (int64_t j = 0; j < n; j++) {
        float v = xi[j] * inv;
        if (ws) v *= ws[j];
        if (bs) v += bs[j];
        yi[j] = v;
      }
    }
    return;
  }
  // NCHW, normalised over C at every pixel (DC-AE's RMSNorm2d). Blocks of pixels, channels outer:
  // the loops run along contiguous pixels (vectorised), and each pixel still sums its channels in
  // order.
  const int64_t N = x.shape[0], C = x.shape[1], P = x.numel() / (N * C);
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (P + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t nb = 0; nb < N * blocks; nb++) {
    const int64_t n = nb / blocks, p0 = nb % blocks * kBlock, np = std::min(kBlock, P - p0);
    const float* xb = xs + n * C * P + p0;
    float* yb = ys + n * C * P + p0;
    double ss[kBlock];
    float inv[kBlock];
    for (int64_t p = 0; p < np; p++) ss[p] = 0.0;
    for (int64_t c = 0; c < C; c++) {
      const float* xc = xb + c * P;
#pragma omp simd
      for (int64_t p = 0; p < np; p++) ss[p] += double(xc[p]) * xc[p];
    }
    for (int64_t p = 0; p < np; p++) inv[p] = 1.f / std::sqrt(float(ss[p] / double(C)) + eps);
    for (int64_t c = 0; c < C; c++) {
      const float* xc = xb + c * P;
      float* yc = yb + c * P;
      const float wc = ws ? ws[c] : 1.f, bc = bs ? bs[c] : 0.f;
#pragma omp simd
      for (int64_t p = 0; p < np; p++) yc[p] = ws ? xc[p] * inv[p] * wc + bc : xc[p] * inv[p] + bc;
    }
  }
}

LATTE_MULTIVERSION void layer_norm(Context& ctx, const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) {
  const float* xs = x.f32();
  float* ys = y.f32();
  const float* ws = w ? w->f32() : nullptr;
  const float* bs = b ? b->f32() : nullptr;
  const int64_t rows = x.shape.rows(), n = x.shape[-1];
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xi = xs + r * n;
    float* yi = ys + r * n;
    double mean = 0.0;
#pragma omp simd reduction(+ : mean)
    for (int64_t j = 0; j < n; j++) mean += xi[j];
    mean /= double(n);
    double var = 0.0;
#pragma omp simd reduction(+ : var)
    for (int64_t j = 0; j < n; j++) var += (xi[j] - mean) * (xi[j] - mean);
    float inv = 1.f / std::sqrt(float(var / double(n)) + eps);
    for (int64_t j = 0; j < n; j++) {
      float v = (xi[j] - float(mean)) * inv;
      if (ws) v *= ws[j];
      if (bs) v += bs[j];
      yi[j] = v;
    }
  }
}

LATTE_MULTIVERSION void softmax(Context& ctx, const Tensor& x, Tensor& y) {
  const float* xs = x.f32();
  float* ys = y.f32();
  const int64_t rows = x.shape.rows(), n = x.shape[-1];
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xi = xs + r * n;
    float* yi = ys + r * n;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = std::max(mx, xi[j]);
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) {
      yi[j] = vexp(xi[j] - mx);
      sum += yi[j];
    }
    float inv = 1.f / sum;
    for (int64_t j = 0; j < n; j++) yi[j] *= inv;
  }
}

}  // namespace latte::cpu
