// Tensor-core attention (issue 19): the same op as attention.cu (masks, GQA, `past`, prompt padding,
// the TCRA residual and its logits output; docs/model.md section 3) with Q K^T and P V on bf16
// mma.sync tiles and the softmax online in f32, flash style. Taken when the call allows bf16
// (AttentionArgs::bf16) and the head dim is a multiple of 16 up to 128; attention.cu (f32 SIMT)
// serves every other call, so f32 calls keep f32 results (within the tested f32 tolerance of the CPU's).
//
// Block = (64-query tile, head h, batch b), 4 warps of 16 query rows. Per 64-key tile the block
// stages K [key][dim] and V transposed [dim][key] in shared memory as bf16, so every B fragment is
// one 32-bit load (mma.cuh's layouts); each warp then computes its 16 x 64 scores (8 n-tiles), adds
// the residual and writes logits from the accumulator layout (rows g, g+8; keys 2t, 2t+1 per
// n-tile), updates the row max / sum in registers (a row lives in one quad: two shuffles), and feeds
// the probabilities back as A fragments of P V without leaving registers.
//
// Not yet here (issue 19): cp.async double buffering of the K/V tiles, ldmatrix, and a split-K
// decode variant (Sq < 16 stays on attention.cu).
#include "cuda/attention_common.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/cuda_kernels.h"
#include "cuda/mma.cuh"

namespace latte::cuda {
namespace {

constexpr int kWarps = 4, BQ = 16 * kWarps, BKV = 64;

using Params = AttentionParams;

template <int D>  // head dim, a multiple of 16
__global__ void __launch_bounds__(kWarps * 32) attention_tc_kernel(const Params p) {
  constexpr int KD = D / 16, ND = D / 8, NT = BKV / 8;  // k-steps of Q K^T, n-tiles of O and of S
  constexpr int LQ = D + 8, LV = BKV + 8;              // padded rows: the fragment loads spread over banks
  static_assert(BQ == BKV, "the query tile is staged in the key tile's buffer");
  __shared__ __align__(16) uint16_t Ks[BKV][LQ];  // first the query tile, then each key tile (35 KB at D = 128)
  __shared__ __align__(16) uint16_t Vt[D][LV];
  auto& Qs = Ks;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g8 = lane >> 2, t4 = lane & 3;
  const int64_t b = blockIdx.z, h = blockIdx.y, kvh = h / p.rep, i0 = int64_t(blockIdx.x) * BQ;
  const int64_t Skv = p.past ? min(max(int64_t(*p.past), int64_t(0)) + p.Sq, p.cap) : p.Skv;

  for (int idx = threadIdx.x; idx < BQ * D; idx += blockDim.x) {
    const int r = idx / D, e = idx % D;
    const int64_t i = i0 + r;
    Qs[r][e] = f32_to_bf16_d(i < p.Sq ? p.q[((b * p.Sq + i) * p.H + h) * D + e] : 0.f);
  }
  __syncthreads();
  uint32_t qa[KD][4];  // this warp's 16 query rows as A fragments, for every key tile
#pragma unroll
  for (int kk = 0; kk < KD; kk++) {
    const uint16_t* r0 = &Qs[warp * 16 + g8][kk * 16 + 2 * t4];
    const uint16_t* r1 = &Qs[warp * 16 + g8 + 8][kk * 16 + 2 * t4];
    qa[kk][0] = ld32(r0);
    qa[kk][1] = ld32(r1);
    qa[kk][2] = ld32(r0 + 8);
    qa[kk][3] = ld32(r1 + 8);
  }

  // the thread's two rows: i[0] (g8) and i[1] (g8 + 8) of the warp's 16
  int64_t row[2], vis[2];
  bool live[2];
  for (int r = 0; r < 2; r++) {
    row[r] = i0 + warp * 16 + g8 + 8 * r;
    live[r] = row[r] < p.Sq;
    vis[r] = attention_visible(p, Skv, Skv - p.Sq + row[r]);
  }
  const int64_t i_last = min(i0 + BQ, p.Sq) - 1;
  const int64_t kend = p.logits ? Skv : attention_visible(p, Skv, Skv - p.Sq + i_last);
  const float gate = p.res ? p.gate[b * p.H + h] : 0.f;
  const int64_t pad0 = p.prompt_len ? min(max(int64_t(p.prompt_len[b]), int64_t(0)), p.c0) : p.c0;

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[ND][4];
#pragma unroll
  for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  for (int64_t j0 = 0; j0 < kend; j0 += BKV) {
    __syncthreads();  // the previous tile is consumed
    for (int idx = threadIdx.x; idx < BKV * D; idx += blockDim.x) {
      const int jj = idx / D, e = idx % D;
      const int64_t j = j0 + jj, off = ((b * p.cap + j) * p.G + kvh) * D + e;
      Ks[jj][e] = f32_to_bf16_d(j < Skv ? p.k[off] : 0.f);
      Vt[e][jj] = f32_to_bf16_d(j < Skv ? p.v[off] : 0.f);
    }
    __syncthreads();

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KD; kk++) {
        const uint16_t* kr = &Ks[n * 8 + g8][kk * 16 + 2 * t4];
        const uint32_t bk[2] = {ld32(kr), ld32(kr + 8)};
        mma_bf16(s[n], qa[kk], bk);
      }
    }

    // scale, residual, logits out, masks; then the running max per row
    float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        const int r = c >> 1;
        const int64_t j = j0 + n * 8 + 2 * t4 + (c & 1);
        float sv = s[n][c] * p.scale;
        if (live[r] && j >= p.c0 && j < Skv) {
          const int64_t li = ((b * p.H + h) * p.Sq + row[r]) * p.Ni + (j - p.c0);
          if (p.res) sv += gate * p.res[li];
          if (p.logits) p.logits[li] = j < vis[r] ? sv : -INFINITY;
        }
        const bool seen = live[r] && j < Skv && j < vis[r] && !(j >= pad0 && j < p.c0);
        s[n][c] = seen ? sv : -INFINITY;
        tmax[r] = fmaxf(tmax[r], s[n][c]);
      }
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(kFull, tmax[r], 1));
      tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(kFull, tmax[r], 2));
      const float mnew = fmaxf(m[r], tmax[r]);
      // nothing visible to this row yet: keep it empty (exp(-inf - -inf) would be NaN)
      corr[r] = mnew == -INFINITY ? 1.f : expf(m[r] - mnew);
      m[r] = mnew;
    }
    float tsum[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        const int r = c >> 1;
        const float pv = m[r] == -INFINITY ? 0.f : expf(s[n][c] - m[r]);
        s[n][c] = pv;
        tsum[r] += pv;
      }
    for (int r = 0; r < 2; r++) l[r] = l[r] * corr[r] + tsum[r];  // per-thread partial: the quad adds up at the end
#pragma unroll
    for (int n = 0; n < ND; n++) {
      o[n][0] *= corr[0];
      o[n][1] *= corr[0];
      o[n][2] *= corr[1];
      o[n][3] *= corr[1];
    }

    // O += P V: P's accumulators become A fragments, 16 keys (two n-tiles of S) per k-step
#pragma unroll
    for (int kc = 0; kc < BKV / 16; kc++) {
      const uint32_t pa[4] = {pack_bf16x2(s[2 * kc][0], s[2 * kc][1]), pack_bf16x2(s[2 * kc][2], s[2 * kc][3]),
                              pack_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1]), pack_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int n = 0; n < ND; n++) {
        const uint16_t* vr = &Vt[n * 8 + g8][kc * 16 + 2 * t4];
        const uint32_t bv[2] = {ld32(vr), ld32(vr + 8)};
        mma_bf16(o[n], pa, bv);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    l[r] += __shfl_xor_sync(kFull, l[r], 1);
    l[r] += __shfl_xor_sync(kFull, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (!live[r]) continue;
    // a row that saw no key at all (every key masked) divides 0 by 0, as the f32 kernel does
    const float inv = 1.f / l[r];
    float* orow = p.out + ((b * p.Sq + row[r]) * p.H + h) * D;
#pragma unroll
    for (int n = 0; n < ND; n++) {
      orow[n * 8 + 2 * t4] = o[n][2 * r] * inv;
      orow[n * 8 + 2 * t4 + 1] = o[n][2 * r + 1] * inv;
    }
  }
}

template <int D>
void launch(Context& c, const Params& p) {
  const int64_t qtiles = (p.Sq + BQ - 1) / BQ;
  if (qtiles > INT32_MAX || p.H > 65535 || p.B > 65535) fail(code::kShape, "attention: too many queries, heads or batch rows for one CUDA grid");
  attention_tc_kernel<D><<<dim3(unsigned(qtiles), unsigned(p.H), unsigned(p.B)), kWarps * 32, 0, c.stream>>>(p);
  check_launch("attention (tensor cores)");
}

}  // namespace

bool attention_tc(Context& c, const AttentionArgs& a) {
  const int64_t d = a.q->shape[3];
  if (!a.bf16 || a.q->shape[1] < 16 || d % 16 != 0 || d > 128) return false;
  const Params p = attention_params(a);
  switch (d) {
    case 16: launch<16>(c, p); break;
    case 32: launch<32>(c, p); break;
    case 48: launch<48>(c, p); break;
    case 64: launch<64>(c, p); break;
    case 80: launch<80>(c, p); break;
    case 96: launch<96>(c, p); break;
    case 112: launch<112>(c, p); break;
    default: launch<128>(c, p); break;
  }
  return true;
}

}  // namespace latte::cuda
