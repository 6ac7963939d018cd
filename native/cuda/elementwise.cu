// Pointwise ops (mirrors cpu/elementwise.cc): grid-stride loops, memory-bound. The formulas are
// the CPU backend's; expf/tanhf/erff are CUDA's full-precision functions (no fast-math).
#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float silu_d(float v) { return v / (1.f + expf(-v)); }

struct SiluF {
  __device__ float operator()(float v) const { return silu_d(v); }
};
struct ReluF {
  __device__ float operator()(float v) const { return v > 0.f ? v : 0.f; }
};
struct GeluQuickF {
  __device__ float operator()(float v) const { return v * (1.f / (1.f + expf(-1.702f * v))); }
};
struct GeluTanhF {
  __device__ float operator()(float v) const { return 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v))); }
};
struct GeluErfF {
  __device__ float operator()(float v) const { return 0.5f * v * (1.f + erff(v * 0.7071067811865476f)); }
};
struct TanhF {
  __device__ float operator()(float v) const { return tanhf(v); }
};

template <class F>
__global__ void map1_kernel(const float* __restrict__ a, float* __restrict__ o, int64_t n, F f) {
  LATTE_GRID_STRIDE(i, n) o[i] = f(a[i]);
}

template <class F>
void map1(Context& c, const Tensor& x, Tensor& y, F f) {
  const int64_t n = x.numel();
  map1_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(x.f32(), y.f32(), n, f);
  check_launch("unary");
}

__global__ void binary_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ o, int64_t n, int64_t bn, bool add) {
  LATTE_GRID_STRIDE(i, n) o[i] = add ? a[i] + b[i % bn] : a[i] * b[i % bn];
}
__global__ void axpby_kernel(float alpha, const float* __restrict__ a, float beta, const float* __restrict__ b, float* __restrict__ o, int64_t n) {
  LATTE_GRID_STRIDE(i, n) o[i] = alpha * a[i] + beta * b[i];
}
__global__ void swiglu_kernel(const float* __restrict__ g, const float* __restrict__ u, float* __restrict__ o, int64_t n) {
  LATTE_GRID_STRIDE(i, n) o[i] = silu_d(g[i]) * u[i];
}
// x [B,S,D], per-sample shift/scale [B,D]
__global__ void modulate_kernel(const float* __restrict__ x, const float* __restrict__ sh, const float* __restrict__ sc, float* __restrict__ o,
                                int64_t n, int64_t S, int64_t D) {
  LATTE_GRID_STRIDE(i, n) {
    const int64_t j = (i / (S * D)) * D + i % D;
    o[i] = x[i] * (1.f + sc[j]) + sh[j];
  }
}
__global__ void gated_add_kernel(const float* __restrict__ h, const float* __restrict__ g, const float* __restrict__ x, float* __restrict__ o,
                                 int64_t n, int64_t S, int64_t D) {
  LATTE_GRID_STRIDE(i, n) o[i] = h[i] + g[(i / (S * D)) * D + i % D] * x[i];
}

}  // namespace

void unary(Context& c, Unary op, const Tensor& x, Tensor& y) {
  switch (op) {
    case Unary::Silu: return map1(c, x, y, SiluF{});
    case Unary::Relu: return map1(c, x, y, ReluF{});
    case Unary::GeluQuick: return map1(c, x, y, GeluQuickF{});
    case Unary::GeluTanh: return map1(c, x, y, GeluTanhF{});
    case Unary::GeluErf: return map1(c, x, y, GeluErfF{});
    case Unary::Tanh: return map1(c, x, y, TanhF{});
  }
  fail(code::kArg, "unary: unknown op");
}

void binary(Context& c, Binary op, const Tensor& a, const Tensor& b, Tensor& y) {
  const int64_t n = a.numel();
  binary_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(a.f32(), b.f32(), y.f32(), n, b.numel(), op == Binary::Add);
  check_launch("binary");
}

void axpby(Context& c, float alpha, const Tensor& a, float beta, const Tensor& b, Tensor& y) {
  const int64_t n = y.numel();
  axpby_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(alpha, a.f32(), beta, b.f32(), y.f32(), n);
  check_launch("axpby");
}

void swiglu(Context& c, const Tensor& gate, const Tensor& up, Tensor& y) {
  const int64_t n = gate.numel();
  swiglu_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(gate.f32(), up.f32(), y.f32(), n);
  check_launch("swiglu");
}

void modulate(Context& c, const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& y) {
  const int64_t n = x.numel(), S = x.shape[1], D = x.shape[2];
  modulate_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(x.f32(), shift.f32(), scale.f32(), y.f32(), n, S, D);
  check_launch("modulate");
}

void gated_add(Context& c, const Tensor& h, const Tensor& gate, const Tensor& x, Tensor& y) {
  const int64_t n = h.numel(), S = h.shape[1], D = h.shape[2];
  gated_add_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(h.f32(), gate.f32(), x.f32(), y.f32(), n, S, D);
  check_launch("gated_add");
}

}  // namespace latte::cuda
