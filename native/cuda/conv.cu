// 2-D convolution, NCHW / OIHW, any stride, padding and groups (incl. 1x1 and depthwise); mirrors
// cpu/conv.cc. Direct fp32 SIMT: a block covers 256 output pixels of one image for COB output
// channels, each thread accumulating its pixel for all COB channels, so every input value it reads
// feeds COB FMAs and the weights (the same for the whole warp) are broadcast loads. An implicit-GEMM
// tensor-core kernel is the fast path to add when the VAE decoder's time matters.
#include <algorithm>

#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kThreads = 256;

struct ConvParams {
  const float *x, *w, *b;
  float* y;
  int64_t N, Cin, H, W, Cout, Ho, Wo, KH, KW, cin_g, cout_g;
  int stride, pad;
};

template <int COB>  // output channels per block; a block's channels lie in one group
__global__ void __launch_bounds__(kThreads) conv2d_kernel(const ConvParams p) {
  const int64_t pix = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t n = blockIdx.z, co0 = int64_t(blockIdx.y) * COB;
  if (pix >= p.Ho * p.Wo) return;  // no barriers below
  const int64_t ho = pix / p.Wo, wo = pix % p.Wo, grp = co0 / p.cout_g;
  float acc[COB];
#pragma unroll
  for (int c = 0; c < COB; c++) acc[c] = co0 + c < p.Cout && p.b ? p.b[co0 + c] : 0.f;
  const int64_t hi0 = ho * p.stride - p.pad, wi0 = wo * p.stride - p.pad, ksz = p.KH * p.KW;
  for (int64_t ci = 0; ci < p.cin_g; ci++) {
    const float* xin = p.x + (n * p.Cin + grp * p.cin_g + ci) * p.H * p.W;
    const float* wci = p.w + (co0 * p.cin_g + ci) * ksz;  // channel co0 + c at + c * cin_g * ksz
    for (int64_t kh = 0; kh < p.KH; kh++) {
      const int64_t hi = hi0 + kh;
      if (hi < 0 || hi >= p.H) continue;
      for (int64_t kw = 0; kw < p.KW; kw++) {
        const int64_t wi = wi0 + kw;
        if (wi < 0 || wi >= p.W) continue;
        const float xv = xin[hi * p.W + wi];
#pragma unroll
        for (int c = 0; c < COB; c++)
          if (co0 + c < p.Cout) acc[c] = fmaf(xv, wci[c * p.cin_g * ksz + kh * p.KW + kw], acc[c]);
      }
    }
  }
#pragma unroll
  for (int c = 0; c < COB; c++)
    if (co0 + c < p.Cout) p.y[((n * p.Cout + co0 + c) * p.Ho + ho) * p.Wo + wo] = acc[c];
}

template <int COB>
void launch(Context& c, const ConvParams& p) {
  const int64_t pix_blocks = (p.Ho * p.Wo + kThreads - 1) / kThreads, co_blocks = (p.Cout + COB - 1) / COB;
  if (pix_blocks > INT32_MAX || co_blocks > 65535 || p.N > 65535) fail(code::kShape, "conv2d: too large for one CUDA grid");
  conv2d_kernel<COB><<<dim3(unsigned(pix_blocks), unsigned(co_blocks), unsigned(p.N)), kThreads, 0, c.stream>>>(p);
  check_launch("conv2d");
}

}  // namespace

void conv2d(Context& c, const Conv2dArgs& a) {
  const Shape &x = a.x->shape, &w = a.w->shape, &y = a.out->shape;
  ConvParams p{a.x->f32(), a.w->f32(), a.b ? a.b->f32() : nullptr, a.out->f32(), x[0], x[1], x[2], x[3], w[0], y[2], y[3], w[2], w[3],
               x[1] / a.groups, w[0] / a.groups, a.stride, a.padding};
  // COB channels share a group only when the group's channel count divides by COB
  if (p.cout_g % 8 == 0)
    launch<8>(c, p);
  else
    launch<1>(c, p);
}

}  // namespace latte::cuda
