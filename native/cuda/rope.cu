// Rotary position embeddings, rotate_half form (mirrors cpu/rope.cc):
//   out[f] = x[f] cos - x[f + d/2] sin,  out[f + d/2] = x[f + d/2] cos + x[f] sin,
// angle = float(pos[axis(f)]) * inv_freq(f). inv_freq and the axis of each frequency are computed
// on the host with the CPU backend's exact float expressions and passed by value, so the only
// difference from the CPU is the device's cosf/sinf (within 2 ulp of the C library's).
#include <cmath>

#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kMaxHalf = 512;  // head dims up to 1024 (the op layer's limit)

struct Table {
  float inv[kMaxHalf];
  uint8_t axis[kMaxHalf];
};

// one thread per (b, s, f): its angle serves every head
__global__ void rope_kernel(const float* __restrict__ x, const int32_t* __restrict__ pos, float* __restrict__ y, const Table tab,
                            int64_t B, int64_t S, int64_t H, int64_t half) {
  LATTE_GRID_STRIDE(idx, B * S * half) {
    const int64_t f = idx % half, bs = idx / half, b = bs / S, s = bs % S;
    const float ang = float(pos[(int64_t(tab.axis[f]) * B + b) * S + s]) * tab.inv[f];
    const float cs = cosf(ang), sn = sinf(ang);
    const int64_t d = 2 * half;
    for (int64_t h = 0; h < H; h++) {
      const int64_t base = (bs * H + h) * d;
      const float x1 = x[base + f], x2 = x[base + f + half];
      y[base + f] = x1 * cs - x2 * sn;
      y[base + f + half] = x2 * cs + x1 * sn;
    }
  }
}

}  // namespace

void rope(Context& c, const RopeArgs& a) {
  const Tensor& x = *a.x;
  const int64_t B = x.shape[0], S = x.shape[1], H = x.shape[2], d = x.shape[3], half = d / 2;
  const int64_t A = a.pos->shape[0];
  if (half > kMaxHalf) fail(code::kShape, "rope: head dim above 1024");
  Table tab{};
  for (int s = 0, f = 0; s < a.n_sections; s++) {
    for (int j = 0; j < a.sections[s]; j++, f++) {
      const float e = a.restart ? float(2 * j) / float(2 * a.sections[s]) : float(2 * f) / float(d);
      tab.inv[f] = 1.f / std::pow(a.theta, e);
      tab.axis[f] = uint8_t(s % A);
    }
  }
  rope_kernel<<<grid_for(B * S * half, 256, c.sms), 256, 0, c.stream>>>(x.f32(), a.pos->ptr<int32_t>(), a.out->f32(), tab, B, S, H, half);
  check_launch("rope");
}

}  // namespace latte::cuda
