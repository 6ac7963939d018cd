// Tensor-core GEMM for packed bf16 weights: y[M, N] = bf16(x)[M, K] W^T + b, W [N, ldw] bf16,
// fp32 accumulation with mma.sync.m16n8k16 (sm_80+; plain sm_90 runs it too).
//
// Design (simple and checkable first; wgmma/TMA would be the Hopper fast path):
//  - block tile BM x BN, K in steps of 32; warps tile the block (WM x WN each) and issue
//    m16n8k16 MMAs whose fragments are read from shared memory with the PTX ISA's documented
//    register layout (no ldmatrix, no swizzle: rows padded to 40 bf16 = 80 bytes, which makes the
//    fragment reads bank-conflict free: row r starts at word 20 r, 20 r mod 32 differs for 8 rows).
//  - x (f32) is read with float4 loads and rounded to bf16 on the way into shared memory (no extra
//    pass, no scratch); weights come in 16-byte loads. Global loads for tile k+1 are issued before
//    the MMAs of tile k (register prefetch, two shared buffers, one barrier per tile).
//  - every load is bounds-checked (zero fill) and every store masked: any M, N, K are correct.
//  - small grids (the model's M = 64..256 rows) split K over gridDim.z into a workspace, reduced in
//    a fixed order (deterministic) with the bias.
#include <algorithm>

#include "cuda/cuda_common.cuh"
#include "cuda/mma.cuh"

namespace latte::cuda {
namespace {

template <int BM_, int BN_, int WM_, int WN_>
struct Tile {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, BK = 32, LDS = BK + 8;
  static constexpr int WARPS_N = BN / WN, WARPS = (BM / WM) * WARPS_N, THREADS = WARPS * 32;
  static constexpr int MT = WM / 16, NT = WN / 8;
  static constexpr int A_ITERS = BM * BK / 4 / THREADS;  // float4 chunks of x per thread per tile
  static constexpr int B_ITERS = BN * BK / 8 / THREADS;  // 8-bf16 chunks of W per thread per tile
  static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 8 == 0, "warp tiling");
  static_assert(A_ITERS * THREADS * 4 == BM * BK && B_ITERS * THREADS * 8 == BN * BK, "load split");
};
using Small = Tile<64, 64, 32, 32>;    // 4 warps
using Large = Tile<128, 128, 64, 32>;  // 8 warps

struct Args {
  const float* x;
  const uint16_t* w;
  const float* bias;
  float* y;        // final output (splits == 1)
  float* partial;  // [splits, M, N] (splits > 1), else null
  int64_t ldw, M, N, K, kchunk;
  bool vec_a, vec_b;
};

template <class T>
__global__ void __launch_bounds__(T::THREADS) gemm_bf16_kernel(const Args a) {
  __shared__ __align__(16) uint16_t As[2][T::BM][T::LDS];
  __shared__ __align__(16) uint16_t Bs[2][T::BN][T::LDS];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / T::WARPS_N, wn = warp % T::WARPS_N, group = lane >> 2, tig = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * T::BN, m0 = int64_t(blockIdx.y) * T::BM;
  const int64_t kbeg = int64_t(blockIdx.z) * a.kchunk, kend = min(a.K, kbeg + a.kchunk);
  const int ktiles = kend > kbeg ? int((kend - kbeg + T::BK - 1) / T::BK) : 0;

  float acc[T::MT][T::NT][4];
#pragma unroll
  for (int i = 0; i < T::MT; i++)
#pragma unroll
    for (int j = 0; j < T::NT; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[i][j][q] = 0.f;

  float4 ra[T::A_ITERS];
  uint4 rb[T::B_ITERS];
  // global -> registers for the tile starting at k0 (zero outside [0, M) x [kbeg, kend) / [0, N))
  auto load = [&](int64_t k0) {
#pragma unroll
    for (int i = 0; i < T::A_ITERS; i++) {
      const int idx = tid + i * T::THREADS, r = idx / (T::BK / 4), c = (idx % (T::BK / 4)) * 4;
      const int64_t gm = m0 + r, gk = k0 + c;
      const float* src = a.x + gm * a.K + gk;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (gm < a.M) {
        if (a.vec_a) {
          if (gk < kend) v = *reinterpret_cast<const float4*>(src);  // K % 4 == 0: all four in range
        } else {
          if (gk < kend) v.x = src[0];
          if (gk + 1 < kend) v.y = src[1];
          if (gk + 2 < kend) v.z = src[2];
          if (gk + 3 < kend) v.w = src[3];
        }
      }
      ra[i] = v;
    }
#pragma unroll
    for (int i = 0; i < T::B_ITERS; i++) {
      const int idx = tid + i * T::THREADS, r = idx / (T::BK / 8), c = (idx % (T::BK / 8)) * 8;
      const int64_t gn = n0 + r, gk = k0 + c;
      const uint16_t* src = a.w + gn * a.ldw + gk;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (gn < a.N) {
        if (a.vec_b) {
          // a chunk may run past kend only at K itself, into the packed rows' zero padding (ldw)
          if (gk < kend) v = *reinterpret_cast<const uint4*>(src);
        } else {
          uint16_t h[8];
#pragma unroll
          for (int j = 0; j < 8; j++) h[j] = gk + j < kend ? src[j] : uint16_t(0);
          v = make_uint4(h[0] | (uint32_t(h[1]) << 16), h[2] | (uint32_t(h[3]) << 16), h[4] | (uint32_t(h[5]) << 16), h[6] | (uint32_t(h[7]) << 16));
        }
      }
      rb[i] = v;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int i = 0; i < T::A_ITERS; i++) {
      const int idx = tid + i * T::THREADS, r = idx / (T::BK / 4), c = (idx % (T::BK / 4)) * 4;
      *reinterpret_cast<uint2*>(&As[buf][r][c]) = make_uint2(pack_bf16x2(ra[i].x, ra[i].y), pack_bf16x2(ra[i].z, ra[i].w));
    }
#pragma unroll
    for (int i = 0; i < T::B_ITERS; i++) {
      const int idx = tid + i * T::THREADS, r = idx / (T::BK / 8), c = (idx % (T::BK / 8)) * 8;
      *reinterpret_cast<uint4*>(&Bs[buf][r][c]) = rb[i];
    }
  };

  if (ktiles > 0) {
    load(kbeg);
    store(0);
  }
  __syncthreads();
  for (int kt = 0; kt < ktiles; kt++) {
    const int cur = kt & 1;
    if (kt + 1 < ktiles) load(kbeg + int64_t(kt + 1) * T::BK);  // in flight during the MMAs
#pragma unroll
    for (int ks = 0; ks < T::BK; ks += 16) {
      uint32_t af[T::MT][4], bf[T::NT][2];
#pragma unroll
      for (int mt = 0; mt < T::MT; mt++) {
        const int r = wm * T::WM + mt * 16 + group;
        af[mt][0] = ld32(&As[cur][r][ks + tig * 2]);
        af[mt][1] = ld32(&As[cur][r + 8][ks + tig * 2]);
        af[mt][2] = ld32(&As[cur][r][ks + 8 + tig * 2]);
        af[mt][3] = ld32(&As[cur][r + 8][ks + 8 + tig * 2]);
      }
#pragma unroll
      for (int nt = 0; nt < T::NT; nt++) {
        const int cn = wn * T::WN + nt * 8 + group;
        bf[nt][0] = ld32(&Bs[cur][cn][ks + tig * 2]);
        bf[nt][1] = ld32(&Bs[cur][cn][ks + 8 + tig * 2]);
      }
#pragma unroll
      for (int mt = 0; mt < T::MT; mt++)
#pragma unroll
        for (int nt = 0; nt < T::NT; nt++) mma_bf16(acc[mt][nt], af[mt], bf[nt]);
    }
    if (kt + 1 < ktiles) store(cur ^ 1);  // that buffer's readers finished before the last barrier
    __syncthreads();
  }

  // C fragment: c0,c1 at (group, 2 tig + {0,1}), c2,c3 at (group + 8, same columns)
  float* dst = a.partial ? a.partial + int64_t(blockIdx.z) * a.M * a.N : a.y;
#pragma unroll
  for (int mt = 0; mt < T::MT; mt++)
#pragma unroll
    for (int nt = 0; nt < T::NT; nt++)
#pragma unroll
      for (int q = 0; q < 4; q++) {
        const int64_t r = m0 + wm * T::WM + mt * 16 + group + (q >= 2 ? 8 : 0);
        const int64_t col = n0 + wn * T::WN + nt * 8 + tig * 2 + (q & 1);
        if (r < a.M && col < a.N) dst[r * a.N + col] = acc[mt][nt][q] + (!a.partial && a.bias ? a.bias[col] : 0.f);
      }
}

__global__ void splitk_reduce_kernel(const float* __restrict__ partial, const float* __restrict__ bias, float* __restrict__ y, int splits, int64_t M, int64_t N) {
  const int64_t total = M * N;
  LATTE_GRID_STRIDE(i, total) {
    float s = 0.f;
    for (int z = 0; z < splits; z++) s += partial[z * total + i];
    y[i] = s + (bias ? bias[i % N] : 0.f);
  }
}

template <class T>
void run(Context& c, Args a, int64_t tiles_m, int64_t tiles_n, int splits) {
  const dim3 grid{unsigned(tiles_n), unsigned(tiles_m), unsigned(splits)};
  gemm_bf16_kernel<T><<<grid, T::THREADS, 0, c.stream>>>(a);
  check_launch("gemm_bf16");
}

}  // namespace

void gemm_bf16(Context& c, const float* x, const uint16_t* w, int64_t ldw, const float* b, float* y, int64_t M, int64_t N, int64_t K) {
  // 16-byte weight loads may run past K into the row padding, which pack_linear zero-fills
  if (ldw % 8 || ldw < (K + 7) / 8 * 8) fail(code::kInternal, "gemm_bf16: weight rows must be padded to a multiple of 8");
  Args a{x, w, b, y, nullptr, ldw, M, N, K, 0, K % 4 == 0 && aligned16(x), aligned16(w)};
  const auto count = [&](int bm, int bn) { return ((M + bm - 1) / bm) * ((N + bn - 1) / bn); };
  // Big tiles (1 block per SM at ~170 registers/thread) only when they fill whole waves well;
  // otherwise small tiles (3 per SM) and split-K below. To be tuned on the GPU (docs/cuda.md).
  const int64_t big = count(Large::BM, Large::BN), waves = (big + c.sms - 1) / c.sms;
  const bool large = M >= 128 && big >= c.sms && double(big) / double(waves * c.sms) >= 0.75;
  const int bm = large ? Large::BM : Small::BM, bn = large ? Large::BN : Small::BN;
  const int64_t tiles_m = (M + bm - 1) / bm, tiles_n = (N + bn - 1) / bn, tiles = tiles_m * tiles_n;
  if (tiles_m > 65535 || tiles_n > INT32_MAX) fail(code::kShape, "linear: operands too large for the CUDA GEMM");
  // Split K until about two waves of blocks exist, keeping >= 4 k-tiles (128) per split.
  const int64_t ktiles = (K + 31) / 32;
  int64_t splits = 1;
  if (tiles < c.sms) splits = std::max<int64_t>(1, std::min<int64_t>({(2 * c.sms + tiles - 1) / tiles, ktiles / 4, 16}));
  const int64_t kchunk = (ktiles + splits - 1) / splits * 32;
  splits = (K + kchunk - 1) / kchunk;
  a.kchunk = kchunk;
  if (splits > 1) a.partial = static_cast<float*>(c.workspace(size_t(splits * M * N) * sizeof(float)));
  if (large)
    run<Large>(c, a, tiles_m, tiles_n, int(splits));
  else
    run<Small>(c, a, tiles_m, tiles_n, int(splits));
  if (splits > 1) {
    splitk_reduce_kernel<<<grid_for(M * N, 256, c.sms), 256, 0, c.stream>>>(a.partial, b, y, int(splits), M, N);
    check_launch("gemm_bf16 split-k reduce");
  }
}

}  // namespace latte::cuda
