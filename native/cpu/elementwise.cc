// Pointwise ops. Plain loops: the compiler vectorises them, and they are memory-bound.
#include <cmath>

#include "cpu/cpu_kernels.h"
#include "cpu/vec_math.h"

namespace latte::cpu {
namespace {

// Below this many elements a loop runs on the stream thread alone: waking the OpenMP team costs
// more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

inline float sigmoid(float x) { return 1.f / (1.f + vexp(-x)); }

// Multiversioned itself: an OpenMP region is outlined into a function of its own, which is cloned
// per CPU only when its enclosing function is (a helper called from a multiversioned caller was
// compiled once, for the x86-64 baseline: scalar calls to floorf per element, 10 ns each).
template <class F>
LATTE_MULTIVERSION void map1(const Tensor& x, Tensor& y, F f) {
  const float* a = x.f32();
  float* o = y.f32();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) o[i] = f(a[i]);
}

}  // namespace

LATTE_MULTIVERSION void unary(Context& ctx, Unary op, const Tensor& x, Tensor& y) {
  switch (op) {
    case Unary::Silu: return map1(x, y, [](float v) { return vsilu(v); });
    case Unary::Relu: return map1(x, y, [](float v) { return v > 0.f ? v : 0.f; });
    case Unary::GeluQuick: return map1(x, y, [](float v) { return v * sigmoid(1.702f * v); });
    case Unary::GeluTanh:
      return map1(x, y, [](float v) {
        const float k = 0.7978845608028654f;  // sqrt(2/pi)
        return 0.5f * v * (1.f + std::tanh(k * (v + 0.044715f * v * v * v)));
      });
    case Unary::Tanh: return map1(x, y, [](float v) { return std::tanh(v); });
    case Unary::GeluErf: return map1(x, y, [](float v) { return 0.5f * v * (1.f + std::erf(v * 0.7071067811865476f)); });
  }
}

LATTE_MULTIVERSION void binary(Context& ctx, Binary op, const Tensor& a, const Tensor& b, Tensor& y) {
  const float* as = a.f32();
  const float* bs = b.f32();
  float* o = y.f32();
  const int64_t n = a.numel(), bn = b.numel(), rows = n / bn;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    const float* ai = as + r * bn;
    float* oi = o + r * bn;
    if (op == Binary::Add)
      for (int64_t j = 0; j < bn; j++) oi[j] = ai[j] + bs[j];
    else
      for (int64_t j = 0; j < bn; j++) oi[j] = ai[j] * bs[j];
  }
}

LATTE_MULTIVERSION void swiglu(Context& ctx, const Tensor& gate, const Tensor& up, Tensor& y) {
  const float* g = gate.f32();
  const float* u = up.f32();
  float* o = y.f32();
  const int64_t n = gate.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) o[i] = vsilu(g[i]) * u[i];
}

// x [B,S,D]; per-sample shift/scale/gate [B,D]
LATTE_MULTIVERSION void modulate(Context& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& y) {
  const int64_t B = x.shape[0], S = x.shape[1], D = x.shape[2];
  const float *xs = x.f32(), *sh = shift.f32(), *sc = scale.f32();
  float* o = y.f32();
#pragma omp parallel for collapse(2) schedule(static) if (B * S * D >= kParallelMin)
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++) {
      const float* xi = xs + (b * S + s) * D;
      float* oi = o + (b * S + s) * D;
      for (int64_t j = 0; j < D; j++) oi[j] = xi[j] * (1.f + sc[b * D + j]) + sh[b * D + j];
    }
}

LATTE_MULTIVERSION void gated_add(Context& ctx, const Tensor& h, const Tensor& gate, const Tensor& x, Tensor& y) {
  const int64_t B = h.shape[0], S = h.shape[1], D = h.shape[2];
  const float *hs = h.f32(), *g = gate.f32(), *xs = x.f32();
  float* o = y.f32();
#pragma omp parallel for collapse(2) schedule(static) if (B * S * D >= kParallelMin)
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++) {
      int64_t off = (b * S + s) * D;
      for (int64_t j = 0; j < D; j++) o[off + j] = hs[off + j] + g[b * D + j] * xs[off + j];
    }
}

LATTE_MULTIVERSION void axpby(Context& ctx, float alpha, const Tensor& a, float beta, const Tensor& b, Tensor& y) {
  const float *pa = a.f32(), *pb = b.f32();
  float* py = y.f32();
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; i++) py[i] = alpha * pa[i] + beta * pb[i];
}

}  // namespace latte::cpu
