// Fused scaled dot-product attention (mirrors cpu/attention.cc, docs/model.md section 3), one kernel per
// call: S = q k^T * scale; masks (none / causal / prefix-causal); GQA (head h reads kv head h / rep);
// the TCRA residual S[:, image cols] += gate[b,h] * R; the post-residual image-column logits written
// out (-inf where masked, as the CPU backend); softmax(S) V with an online (flash-style) softmax in
// fp32, so any Skv streams through shared memory in tiles of BKV keys.
//
// Block = (query tile of 4 * QW queries, head h, batch b), 4 warps, each warp owning QW queries.
// Per key tile: lane j computes the score of key j for each of its warp's queries (q broadcast
// from shared memory, K rows padded to an odd stride so lanes hit distinct banks), the warp
// reduces max and sum, then lanes own head-dim slices e = lane + 32 t of the output and accumulate
// p_j v_j. Plain fp32 SIMT (within the f32 tolerance of the CPU's); attention() first offers the call to the
// tensor-core kernel (attention_tc.cu, bf16 allowed) and the split-KV decode one (attention_decode.cu).
#include "cuda/attention_common.cuh"
#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kWarps = 4;

using Params = AttentionParams;

template <int DT, int QW, int BKV>  // DT: head-dim slices per lane (d <= 32 DT); QW: queries per warp
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(const Params p) {
  constexpr int BQ = kWarps * QW;
  extern __shared__ float smem[];
  const int64_t d = p.d, ks = d | 1;  // odd K-row stride: conflict-free column reads across lanes
  float* Ks = smem;                   // [BKV][ks]
  float* Vs = Ks + BKV * ks;          // [BKV][d]
  float* Qs = Vs + BKV * d;           // [BQ][d]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, h = blockIdx.y, g = h / p.rep, i0 = int64_t(blockIdx.x) * BQ;
  // a cache's length arrives on the device (a captured decode step serves every length); the host
  // checked nothing about it, so it is clamped to fit the cache
  const int64_t Skv = p.past ? min(max(int64_t(*p.past), int64_t(0)) + p.Sq, p.cap) : p.Skv;

  for (int64_t idx = threadIdx.x; idx < BQ * d; idx += blockDim.x) {
    const int64_t i = i0 + idx / d;
    Qs[idx] = i < p.Sq ? p.q[((b * p.Sq + i) * p.H + h) * d + idx % d] : 0.f;
  }
  // keys this block needs: up to the last query's visible range (all of them when logits are
  // written, so masked columns get their -inf)
  const int64_t i_last = min(i0 + BQ, p.Sq) - 1;
  const int64_t kend = p.logits ? Skv : attention_visible(p, Skv, Skv - p.Sq + i_last);
  const float gate = p.res ? p.gate[b * p.H + h] : 0.f;
  // this row's padding between its prompt and the image block (none without prompt_len)
  const int64_t pad0 = p.prompt_len ? min(max(int64_t(p.prompt_len[b]), int64_t(0)), p.c0) : p.c0;

  float m[QW], l[QW], o[QW][DT];
#pragma unroll
  for (int qq = 0; qq < QW; qq++) {
    m[qq] = -INFINITY;
    l[qq] = 0.f;
#pragma unroll
    for (int t = 0; t < DT; t++) o[qq][t] = 0.f;
  }

  for (int64_t j0 = 0; j0 < kend; j0 += BKV) {
    __syncthreads();  // the previous tile is consumed (and Qs is written, on the first pass)
    for (int64_t idx = threadIdx.x; idx < BKV * d; idx += blockDim.x) {
      const int64_t jj = idx / d, e = idx % d, j = j0 + jj;
      const int64_t off = ((b * p.cap + j) * p.G + g) * d + e;
      Ks[jj * ks + e] = j < Skv ? p.k[off] : 0.f;
      Vs[jj * d + e] = j < Skv ? p.v[off] : 0.f;
    }
    __syncthreads();
    const int jn = int(min(int64_t(BKV), Skv - j0));  // valid keys in this tile
#pragma unroll
    for (int qq = 0; qq < QW; qq++) {
      const int qi = warp * QW + qq;
      const int64_t i = i0 + qi;
      if (i >= p.Sq) continue;  // warp-uniform
      const int64_t qpos = Skv - p.Sq + i, vis = attention_visible(p, Skv, qpos), j = j0 + lane;
      float s = -INFINITY;
      if (lane < jn) {
        const float* qr = Qs + qi * d;
        const float* kr = Ks + lane * ks;
        float dot = 0.f;
        for (int64_t e = 0; e < d; e++) dot = fmaf(qr[e], kr[e], dot);
        float sv = dot * p.scale;
        if (j >= p.c0) {
          const int64_t li = ((b * p.H + h) * p.Sq + i) * p.Ni + (j - p.c0);
          if (p.res) sv += gate * p.res[li];
          if (p.logits) p.logits[li] = j < vis ? sv : -INFINITY;
        }
        if (j < vis && !(j >= pad0 && j < p.c0)) s = sv;
      }
      const float mnew = fmaxf(m[qq], warp_max(s));
      if (mnew == -INFINITY) continue;  // nothing visible to this query yet (uniform after the reduce)
      const float corr = expf(m[qq] - mnew);  // m = -inf on the first visible tile -> 0
      const float pj = expf(s - mnew);        // masked keys: exp(-inf) = 0
      l[qq] = l[qq] * corr + warp_sum(pj);
      m[qq] = mnew;
#pragma unroll
      for (int t = 0; t < DT; t++) o[qq][t] *= corr;
      for (int jj = 0; jj < jn; jj++) {
        const float pb = __shfl_sync(kFull, pj, jj);
        const float* vr = Vs + jj * d;
#pragma unroll
        for (int t = 0; t < DT; t++) {
          const int64_t e = lane + 32 * t;
          if (e < d) o[qq][t] = fmaf(pb, vr[e], o[qq][t]);
        }
      }
    }
  }

#pragma unroll
  for (int qq = 0; qq < QW; qq++) {
    const int64_t i = i0 + warp * QW + qq;
    if (i >= p.Sq) continue;
    const float inv = 1.f / l[qq];
    float* orow = p.out + ((b * p.Sq + i) * p.H + h) * d;
#pragma unroll
    for (int t = 0; t < DT; t++) {
      const int64_t e = lane + 32 * t;
      if (e < d) orow[e] = o[qq][t] * inv;
    }
  }
}

template <int DT, int QW, int BKV>
void launch(Context& c, const Params& p) {
  constexpr int BQ = kWarps * QW;
  const size_t smem = size_t(BKV * (p.d | 1) + BKV * p.d + BQ * p.d) * sizeof(float);
  if (smem > c.smem_optin) fail(code::kShape, "attention: head dim " + std::to_string(p.d) + " needs more shared memory than the device has");
  auto kernel = attention_kernel<DT, QW, BKV>;
  if (smem > 48 * 1024) check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), "attention smem");
  const int64_t qtiles = (p.Sq + BQ - 1) / BQ;
  if (qtiles > INT32_MAX || p.H > 65535 || p.B > 65535) fail(code::kShape, "attention: too many queries, heads or batch rows for one CUDA grid");
  kernel<<<dim3(unsigned(qtiles), unsigned(p.H), unsigned(p.B)), kWarps * 32, smem, c.stream>>>(p);
  check_launch("attention");
}

}  // namespace

void attention(Context& c, const AttentionArgs& a) {
  if (attention_tc(c, a)) return;      // bf16 allowed and a shape the tensor-core kernel takes
  if (attention_decode(c, a)) return;  // a few queries over many keys: split over the keys
  const Params p = attention_params(a);
  if (p.d <= 64)
    launch<2, 4, 32>(c, p);
  else if (p.d <= 128)
    launch<4, 4, 32>(c, p);
  else if (p.d <= 256)
    launch<8, 2, 32>(c, p);
  else if (p.d <= 1024)
    launch<32, 1, 8>(c, p);
  else
    fail(code::kShape, "attention: head dim above 1024 is not supported on CUDA");
}

}  // namespace latte::cuda
