// Normalisations and softmax (mirrors cpu/norm.cc): the same formulas and the same float64
// accumulation of the statistics as the CPU backend, so only summation order differs.
// RMSNorm: (x * rsqrt(mean(x^2) + eps)) * w (+ b); LayerNorm: (x - mean) * rsqrt(var + eps) * w + b.
#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row of n values.
__global__ void __launch_bounds__(kThreads) rms_rows_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                                                           float* __restrict__ y, int64_t rows, int64_t n, float eps) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xi = x + r * n;
    float* yi = y + r * n;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) ss += double(xi[j]) * xi[j];
    ss = block_sum(ss, sh);
    const float inv = 1.f / sqrtf(float(ss / double(n)) + eps);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float v = xi[j] * inv;
      if (w) v *= w[j];
      if (b) v += b[j];
      yi[j] = v;
    }
  }
}

// NCHW normalised over C at every pixel (DC-AE's RMSNorm2d): one thread per (image, pixel), the
// channel loop strides by P so neighbouring threads read neighbouring pixels.
__global__ void rms_channels_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                                    float* __restrict__ y, int64_t N, int64_t C, int64_t P, float eps) {
  LATTE_GRID_STRIDE(np, N * P) {
    const int64_t n = np / P, p = np % P;
    const float* xi = x + n * C * P + p;
    float* yi = y + n * C * P + p;
    double ss = 0.0;
    for (int64_t c = 0; c < C; c++) ss += double(xi[c * P]) * xi[c * P];
    const float inv = 1.f / sqrtf(float(ss / double(C)) + eps);
    for (int64_t c = 0; c < C; c++) {
      float v = xi[c * P] * inv;
      if (w) v *= w[c];
      if (b) v += b[c];
      yi[c * P] = v;
    }
  }
}

__global__ void __launch_bounds__(kThreads) layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                                                             float* __restrict__ y, int64_t rows, int64_t n, float eps) {
  __shared__ double sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xi = x + r * n;
    float* yi = y + r * n;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += xi[j];
    const double mean = block_sum(s, sh) / double(n);
    double v2 = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) v2 += (xi[j] - mean) * (xi[j] - mean);
    v2 = block_sum(v2, sh);
    const float inv = 1.f / sqrtf(float(v2 / double(n)) + eps);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float v = (xi[j] - float(mean)) * inv;
      if (w) v *= w[j];
      if (b) v += b[j];
      yi[j] = v;
    }
  }
}

__global__ void __launch_bounds__(kThreads) softmax_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t rows, int64_t n) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xi = x + r * n;
    float* yi = y + r * n;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, sh);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float e = expf(xi[j] - mx);
      yi[j] = e;
      s += e;
    }
    const float inv = 1.f / block_sum(s, sh);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yi[j] *= inv;  // each thread rescales its own writes
  }
}

unsigned row_blocks(int64_t rows) { return unsigned(rows < (1 << 20) ? rows : (1 << 20)); }

}  // namespace

void rms_norm(Context& c, const Tensor& x, const Tensor* w, const Tensor* b, float eps, bool channels, Tensor& y) {
  const float* ws = w ? w->f32() : nullptr;
  const float* bs = b ? b->f32() : nullptr;
  if (!channels) {
    const int64_t rows = x.shape.rows(), n = x.shape[-1];
    rms_rows_kernel<<<row_blocks(rows), kThreads, 0, c.stream>>>(x.f32(), ws, bs, y.f32(), rows, n, eps);
  } else {
    const int64_t N = x.shape[0], C = x.shape[1], P = x.numel() / (N * C);
    rms_channels_kernel<<<grid_for(N * P, kThreads, c.sms), kThreads, 0, c.stream>>>(x.f32(), ws, bs, y.f32(), N, C, P, eps);
  }
  check_launch("rms_norm");
}

void layer_norm(Context& c, const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) {
  const int64_t rows = x.shape.rows(), n = x.shape[-1];
  layer_norm_kernel<<<row_blocks(rows), kThreads, 0, c.stream>>>(x.f32(), w ? w->f32() : nullptr, b ? b->f32() : nullptr, y.f32(), rows, n, eps);
  check_launch("layer_norm");
}

void softmax(Context& c, const Tensor& x, Tensor& y) {
  const int64_t rows = x.shape.rows(), n = x.shape[-1];
  softmax_kernel<<<row_blocks(rows), kThreads, 0, c.stream>>>(x.f32(), y.f32(), rows, n);
  check_launch("softmax");
}

}  // namespace latte::cuda
