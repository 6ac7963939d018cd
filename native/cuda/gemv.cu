// y[M, N] = x[M, K] W^T + b for M <= 8 (decode, the time embedding): bound by streaming the weights,
// so one warp owns one output column and reads its weight row once with 16-byte loads, applying it to
// all M activation rows (which stay in L1/L2). Activations stay f32, accumulation f32 (mirrors
// cpu/gemv.cc, which also keeps f32 activations).
#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kWarps = 8;

template <class W, int MR>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const float* __restrict__ x, const typename W::T* __restrict__ w, int64_t ldw,
                                                         const float* __restrict__ bias, float* __restrict__ y, int M, int64_t N, int64_t K, bool vec) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (n >= N) return;  // the whole warp leaves together; no block barrier follows
  const typename W::T* wr = w + n * ldw;
  float acc[MR];
#pragma unroll
  for (int m = 0; m < MR; m++) acc[m] = 0.f;
  if (vec) {  // K % 8 == 0 and 16-byte aligned rows (checked by the launcher)
#pragma unroll 2
    for (int64_t k = int64_t(lane) * 8; k < K; k += 256) {
      float wv[8];
      W::get8(wr + k, wv);
#pragma unroll
      for (int m = 0; m < MR; m++) {
        if (m >= M) break;
        const float4 a = *reinterpret_cast<const float4*>(x + m * K + k), b = *reinterpret_cast<const float4*>(x + m * K + k + 4);
        acc[m] += a.x * wv[0] + a.y * wv[1] + a.z * wv[2] + a.w * wv[3] + b.x * wv[4] + b.y * wv[5] + b.z * wv[6] + b.w * wv[7];
      }
    }
  } else {
    for (int64_t k = lane; k < K; k += 32) {
      const float wv = W::get(wr, k);
#pragma unroll
      for (int m = 0; m < MR; m++) {
        if (m >= M) break;
        acc[m] = fmaf(x[m * K + k], wv, acc[m]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MR; m++) {
    const float s = warp_sum(acc[m]);
    if (lane == 0 && m < M) y[m * N + n] = s + (bias ? bias[n] : 0.f);
  }
}

template <class W>
void launch(Context& c, const float* x, const void* w, int64_t ldw, const float* b, float* y, int64_t M, int64_t N, int64_t K, bool vec) {
  const int64_t blocks = (N + kWarps - 1) / kWarps;
  if (blocks > INT32_MAX) fail(code::kShape, "linear: output width too large for the CUDA GEMV");
  const auto* wt = static_cast<const typename W::T*>(w);
  const int m = int(M);
  if (M == 1)
    gemv_kernel<W, 1><<<unsigned(blocks), kWarps * 32, 0, c.stream>>>(x, wt, ldw, b, y, m, N, K, vec);
  else if (M <= 2)
    gemv_kernel<W, 2><<<unsigned(blocks), kWarps * 32, 0, c.stream>>>(x, wt, ldw, b, y, m, N, K, vec);
  else if (M <= 4)
    gemv_kernel<W, 4><<<unsigned(blocks), kWarps * 32, 0, c.stream>>>(x, wt, ldw, b, y, m, N, K, vec);
  else
    gemv_kernel<W, 8><<<unsigned(blocks), kWarps * 32, 0, c.stream>>>(x, wt, ldw, b, y, m, N, K, vec);
  check_launch("gemv");
}

}  // namespace

void gemv(Context& c, const float* x, const void* w, DType wt, int64_t ldw, const float* b, float* y, int64_t M, int64_t N, int64_t K) {
  if (M < 1 || M > 8) fail(code::kInternal, "gemv: rows must be 1..8");
  // 16-byte loads need every row start aligned: K and ldw multiples of 8 elements, aligned bases
  const bool vec = K % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w);
  switch (wt) {
    case DType::F32: return launch<WF32>(c, x, w, ldw, b, y, M, N, K, vec);
    case DType::BF16: return launch<WBF16>(c, x, w, ldw, b, y, M, N, K, vec);
    case DType::F16: return launch<WF16>(c, x, w, ldw, b, y, M, N, K, vec);
    default: fail(code::kDType, "linear: unsupported weight dtype on CUDA");
  }
}

}  // namespace latte::cuda
