// DC-AE's ReLU linear attention (mirrors cpu/linear_attention.cc, same float64 accumulation), per
// image and head over the N = H*W pixels: q = relu(Q), k = relu(K), then
//   N > d:  vk = [v; 1] k^T ([d+1, d], one block-wide reduction over N per entry), then per pixel
//           out = (vk[:d] q) / (vk[d] q + eps)
//   N <= d: s = k^T q ([N, N] in the workspace), columns divided by (sum + eps), out = v s.
// Channel layout of qkv: head h owns the consecutive channels [3dh, 3dh + 3d) as (q, k, v).
#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kThreads = 256;

// grid (d + 1, heads, B): row i of vk for one (b, h)
__global__ void __launch_bounds__(kThreads) vk_kernel(const float* __restrict__ qkv, double* __restrict__ vk, int64_t heads, int64_t d, int64_t N) {
  __shared__ double sh[32];
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const float* base = qkv + (b * heads + h) * 3 * d * N;
  const float *k = base + d * N, *v = base + 2 * d * N;
  double* out = vk + ((b * heads + h) * (d + 1) + i) * d;
  for (int64_t j = 0; j < d; j++) {
    double s = 0.0;
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) s += double(i < d ? v[i * N + n] : 1.f) * fmaxf(k[j * N + n], 0.f);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) out[j] = s;
  }
}

// one thread per (b, h, pixel n): out[i, n] for every i
__global__ void apply_vk_kernel(const float* __restrict__ qkv, const double* __restrict__ vk, float* __restrict__ y, int64_t B, int64_t heads,
                                int64_t d, int64_t N, float eps) {
  LATTE_GRID_STRIDE(t, B * heads * N) {
    const int64_t n = t % N, bh = t / N;
    const float* q = qkv + bh * 3 * d * N;
    const double* m = vk + bh * (d + 1) * d;
    float* out = y + bh * d * N;
    double den = 0.0;
    for (int64_t j = 0; j < d; j++) den += m[d * d + j] * fmaxf(q[j * N + n], 0.f);
    for (int64_t i = 0; i < d; i++) {
      double num = 0.0;
      for (int64_t j = 0; j < d; j++) num += m[i * d + j] * fmaxf(q[j * N + n], 0.f);
      out[i * N + n] = float(num / (den + eps));
    }
  }
}

// N <= d: one thread per (b, h, query pixel n); s[., n] lives in the workspace column n
__global__ void quadratic_kernel(const float* __restrict__ qkv, double* __restrict__ s, float* __restrict__ y, int64_t B, int64_t heads,
                                 int64_t d, int64_t N, float eps) {
  LATTE_GRID_STRIDE(t, B * heads * N) {
    const int64_t n = t % N, bh = t / N;
    const float* q = qkv + bh * 3 * d * N;
    const float *k = q + d * N, *v = q + 2 * d * N;
    double* sc = s + bh * N * N;  // [keys m, queries n]
    double col = 0.0;
    for (int64_t m = 0; m < N; m++) {
      double acc = 0.0;
      for (int64_t j = 0; j < d; j++) acc += double(fmaxf(k[j * N + m], 0.f)) * fmaxf(q[j * N + n], 0.f);
      sc[m * N + n] = acc;
      col += acc;
    }
    for (int64_t m = 0; m < N; m++) sc[m * N + n] /= col + eps;
    float* out = y + bh * d * N;
    for (int64_t i = 0; i < d; i++) {
      double acc = 0.0;
      for (int64_t m = 0; m < N; m++) acc += double(v[i * N + m]) * sc[m * N + n];
      out[i * N + n] = float(acc);
    }
  }
}

}  // namespace

void relu_linear_attention(Context& c, const Tensor& qkv, int d, float eps, Tensor& y) {
  const int64_t B = qkv.shape[0], heads = qkv.shape[1] / (3 * d), N = qkv.shape[2] * qkv.shape[3];
  if (heads > 65535 || B > 65535) fail(code::kShape, "relu_linear_attention: too many heads or images for one CUDA grid");
  if (N > d) {
    double* vk = static_cast<double*>(c.workspace(size_t(B * heads * (d + 1) * d) * sizeof(double)));
    vk_kernel<<<dim3(unsigned(d + 1), unsigned(heads), unsigned(B)), kThreads, 0, c.stream>>>(qkv.f32(), vk, heads, d, N);
    check_launch("relu_linear_attention vk");
    apply_vk_kernel<<<grid_for(B * heads * N, kThreads, c.sms), kThreads, 0, c.stream>>>(qkv.f32(), vk, y.f32(), B, heads, d, N, eps);
    check_launch("relu_linear_attention apply");
  } else {
    double* s = static_cast<double*>(c.workspace(size_t(B * heads * N * N) * sizeof(double)));
    quadratic_kernel<<<grid_for(B * heads * N, kThreads, c.sms), kThreads, 0, c.stream>>>(qkv.f32(), s, y.f32(), B, heads, d, N, eps);
    check_launch("relu_linear_attention");
  }
}

}  // namespace latte::cuda
