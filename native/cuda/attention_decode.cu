// Split-KV attention for decode (issue 19): a few query rows against a long key range. attention.cu
// gives one block per (query tile, head, batch row), so one token of a 12-head model runs 12 blocks on
// a GPU with 100+ multiprocessors, each streaming every key. Here the keys split into chunks of
// kChunk, one block per (chunk, head, query row): each block writes its chunk's max, sum and
// unnormalised output (f32) to the workspace, and a second kernel combines the chunks in a fixed
// order (deterministic), flash-decoding style. f32 throughout: results stay within the f32 kernel's
// tolerance of the CPU's.
//
// Taken for up to kMaxRows queries, no image block (no residual, no logits, no prompt padding) and at
// least kMinKeys key rows (k/v's capacity). The chunk count follows the capacity, not the device-side
// `past`, so a captured decode graph serves every length: chunks past the keys that exist are empty.
#include "cuda/attention_common.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/cuda_kernels.h"

namespace latte::cuda {
namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32, kChunk = 128, kMaxRows = 4, kMinKeys = 256, kMaxD = 256;

// grid (chunk, head, batch row * Sq + query); partial [B * Sq, H, chunks] of {m, l} and [.., d] outputs
__global__ void __launch_bounds__(kThreads) decode_chunk_kernel(const AttentionParams p, int64_t chunks, float* ml, float* po) {
  __shared__ float qs[kMaxD];
  __shared__ float ps[kChunk];
  __shared__ float red[kWarps];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t s = blockIdx.x, h = blockIdx.y, bi = blockIdx.z, b = bi / p.Sq, i = bi % p.Sq, g = h / p.rep, d = p.d;
  const int64_t Skv = p.past ? min(max(int64_t(*p.past), int64_t(0)) + p.Sq, p.cap) : p.Skv;
  const int64_t vis = min(attention_visible(p, Skv, Skv - p.Sq + i), Skv);
  const int64_t j0 = s * kChunk, jn = max(int64_t(0), min(int64_t(kChunk), vis - j0));  // keys of this chunk seen
  for (int64_t e = threadIdx.x; e < d; e += kThreads) qs[e] = p.q[((b * p.Sq + i) * p.H + h) * d + e];
  __syncthreads();
  // scores: a warp per key, lanes over the head dim (coalesced rows)
  for (int64_t jj = warp; jj < jn; jj += kWarps) {
    const float* kr = p.k + ((b * p.cap + j0 + jj) * p.G + g) * d;
    float dot = 0.f;
    for (int64_t e = lane; e < d; e += 32) dot = fmaf(qs[e], kr[e], dot);
    dot = warp_sum(dot);
    if (lane == 0) ps[jj] = dot * p.scale;
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int64_t jj = threadIdx.x; jj < jn; jj += kThreads) mx = fmaxf(mx, ps[jj]);
  const float m = block_max(mx, red);
  float sum = 0.f;
  for (int64_t jj = threadIdx.x; jj < jn; jj += kThreads) {
    const float e = expf(ps[jj] - m);
    ps[jj] = e;
    sum += e;
  }
  const float l = block_sum(sum, red);  // its __syncthreads also publishes ps
  const int64_t row = (bi * p.H + h) * chunks + s;
  if (threadIdx.x == 0) {
    ml[2 * row] = m;  // -inf for an empty chunk: the combine gives it weight 0
    ml[2 * row + 1] = l;
  }
  for (int64_t e = threadIdx.x; e < d; e += kThreads) {
    float acc = 0.f;
    for (int64_t jj = 0; jj < jn; jj++) acc = fmaf(ps[jj], p.v[((b * p.cap + j0 + jj) * p.G + g) * d + e], acc);
    po[row * d + e] = acc;
  }
}

// grid (head, batch row * Sq + query): out = sum_s o_s exp(m_s - M) / sum_s l_s exp(m_s - M), chunks in order
__global__ void __launch_bounds__(kThreads) decode_combine_kernel(const AttentionParams p, int64_t chunks, const float* ml, const float* po) {
  const int64_t h = blockIdx.x, bi = blockIdx.y, d = p.d, base = (bi * p.H + h) * chunks;
  float M = -INFINITY;
  for (int64_t s = 0; s < chunks; s++) M = fmaxf(M, ml[2 * (base + s)]);
  float L = 0.f;
  for (int64_t s = 0; s < chunks; s++) {
    const float ms = ml[2 * (base + s)];
    if (ms != -INFINITY) L += ml[2 * (base + s) + 1] * expf(ms - M);
  }
  float* orow = p.out + (bi * p.H + h) * d;  // out [B, Sq, H, d]: row bi = b * Sq + i
  for (int64_t e = threadIdx.x; e < d; e += kThreads) {
    float acc = 0.f;
    for (int64_t s = 0; s < chunks; s++) {
      const float ms = ml[2 * (base + s)];
      if (ms != -INFINITY) acc = fmaf(po[(base + s) * d + e], expf(ms - M), acc);
    }
    orow[e] = acc / L;  // nothing visible at all: 0 / 0, as the other kernels
  }
}

}  // namespace

bool attention_decode(Context& c, const AttentionArgs& a) {
  const int64_t Sq = a.q->shape[1], d = a.q->shape[3], cap = a.k->shape[1];
  if (Sq > kMaxRows || cap < kMinKeys || d > kMaxD || a.residual || a.logits || a.prompt_len || a.image_col0 != cap) return false;
  const AttentionParams p = attention_params(a);
  const int64_t chunks = (cap + kChunk - 1) / kChunk, rows = p.B * Sq;
  if (chunks > INT32_MAX || p.H > 65535 || rows > 65535) return false;  // the f32 kernel's grid takes these
  float* ml = static_cast<float*>(c.workspace(size_t(rows * p.H * chunks * (2 + d)) * sizeof(float)));
  float* po = ml + 2 * rows * p.H * chunks;
  decode_chunk_kernel<<<dim3(unsigned(chunks), unsigned(p.H), unsigned(rows)), kThreads, 0, c.stream>>>(p, chunks, ml, po);
  check_launch("attention (split-KV decode)");
  decode_combine_kernel<<<dim3(unsigned(p.H), unsigned(rows)), kThreads, 0, c.stream>>>(p, chunks, ml, po);
  check_launch("attention (split-KV combine)");
  return true;
}

}  // namespace latte::cuda
