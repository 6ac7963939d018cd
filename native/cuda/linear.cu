// Linear layers on the GPU: y = x W^T + b with W in nn.Linear layout [out, in] (mirrors cpu/linear.cc).
// The weight semantics follow the CPU backend exactly: pack_linear keeps f32 weights as f32 and
// rounds them to bf16 when the compute type is bf16 or the source is 16-bit. Dispatch by rows M:
//   M <= 8                      -> gemv.cu (weight-streaming, f32 activations)
//   packed bf16, compute bf16   -> gemm_bf16.cu (tensor cores; activations round to bf16, like AMX)
//   everything else             -> the SIMT fp32 GEMM below (16-bit weights widen on load)
// q8 (core/quant.h): quantised with the CPU's rule and stored dequantised as f32, so the GPU computes
// with exactly the CPU's q8 weights. That is q8's accuracy, not yet its memory or speed: a native
// int8 GEMV is future work (docs/quantization.md).
#include <algorithm>

#include "core/quant.h"
#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

// ---- packing ------------------------------------------------------------------------------------
// dst [n, ldw] (zero padded past k) from src [n, k]; to bf16 when `to_bf16`, else a plain f32 copy.
template <class W>
__global__ void pack_kernel(const typename W::T* src, void* dst, bool to_bf16, int64_t n, int64_t k, int64_t ldw) {
  LATTE_GRID_STRIDE(i, n * ldw) {
    const int64_t r = i / ldw, col = i % ldw;
    const float v = col < k ? W::get(src, r * k + col) : 0.f;
    if (to_bf16)
      static_cast<uint16_t*>(dst)[i] = f32_to_bf16_d(v);
    else
      static_cast<float*>(dst)[i] = v;
  }
}

// dst [n, ldw] f32 (zero padded past k): each thread quantises one block of 32 and writes q * d
template <class W>
__global__ void pack_q8_kernel(const typename W::T* src, float* dst, int64_t n, int64_t k, int64_t ldw) {
  const int64_t per_row = (k + kQ8Block - 1) / kQ8Block;
  LATTE_GRID_STRIDE(i, n * per_row) {
    const int64_t r = i / per_row, c0 = (i % per_row) * kQ8Block;
    const int len = int(k - c0 < kQ8Block ? k - c0 : kQ8Block);
    float v[kQ8Block];
    int8_t q[kQ8Block];
    for (int j = 0; j < len; j++) v[j] = W::get(src, r * k + c0 + j);
    const float d = f16_to_f32(q8_quantise_block(v, len, q));
    for (int j = 0; j < kQ8Block && c0 + j < ldw; j++) dst[r * ldw + c0 + j] = float(q[j]) * d;
  }
}

// ---- SIMT fp32 GEMM -----------------------------------------------------------------------------
// 64 x 64 output tile per block of 256 threads, 4 x 4 outputs per thread, K in steps of 16 through
// shared memory. Loads are bounds-checked element by element (zero outside), so any M, N, K work.
constexpr int kTM = 64, kTN = 64, kTK = 16, kThreads = 256;

template <class W>
__global__ void __launch_bounds__(kThreads) gemm_f32_kernel(const float* __restrict__ x, const typename W::T* __restrict__ w, int64_t ldw,
                                                            const float* __restrict__ bias, float* __restrict__ y, int64_t M, int64_t N, int64_t K) {
  __shared__ __align__(16) float As[kTK][kTM + 4];  // 16-byte aligned: read as float4
  __shared__ __align__(16) float Bs[kTK][kTN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t n0 = int64_t(blockIdx.x) * kTN;
  const int64_t mtiles = (M + kTM - 1) / kTM;
  for (int64_t mt = blockIdx.y; mt < mtiles; mt += gridDim.y) {  // gridDim.y is capped at 65535
    const int64_t m0 = mt * kTM;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kTK) {
#pragma unroll
      for (int i = 0; i < (kTM * kTK) / kThreads; i++) {
        const int idx = tid + i * kThreads, r = idx / kTK, c = idx % kTK;
        const int64_t gm = m0 + r, gn = n0 + r, gk = k0 + c;
        As[c][r] = gm < M && gk < K ? x[gm * K + gk] : 0.f;
        Bs[c][r] = gn < N && gk < K ? W::get(w, gn * ldw + gk) : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kTK; kk++) {
        const float4 a = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
        const float4 b = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
        const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int64_t gm = m0 + ty * 4 + i;
      if (gm >= M) continue;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int64_t gn = n0 + tx * 4 + j;
        if (gn < N) y[gm * N + gn] = acc[i][j] + (bias ? bias[gn] : 0.f);
      }
    }
  }
}

}  // namespace

void gemm_f32(Context& c, const float* x, const void* w, DType wt, int64_t ldw, const float* b, float* y, int64_t M, int64_t N, int64_t K) {
  const int64_t ntiles = (N + kTN - 1) / kTN, mtiles = (M + kTM - 1) / kTM;
  if (ntiles > INT32_MAX) fail(code::kShape, "linear: output width too large for the CUDA GEMM");
  const dim3 grid{unsigned(ntiles), unsigned(std::min<int64_t>(mtiles, 65535))};
  switch (wt) {
    case DType::F32: gemm_f32_kernel<WF32><<<grid, kThreads, 0, c.stream>>>(x, static_cast<const float*>(w), ldw, b, y, M, N, K); break;
    case DType::BF16: gemm_f32_kernel<WBF16><<<grid, kThreads, 0, c.stream>>>(x, static_cast<const uint16_t*>(w), ldw, b, y, M, N, K); break;
    case DType::F16: gemm_f32_kernel<WF16><<<grid, kThreads, 0, c.stream>>>(x, static_cast<const uint16_t*>(w), ldw, b, y, M, N, K); break;
    default: fail(code::kDType, "linear: unsupported weight dtype on CUDA");
  }
  check_launch("gemm_f32");
}

std::shared_ptr<Packed> pack_linear(Context& c, const Tensor& w, DType compute) {
  auto p = std::make_shared<PackedLinear>();
  p->n = w.shape[0];
  p->k = w.shape[1];
  p->ldw = (p->k + 7) / 8 * 8;
  const bool q8 = compute == DType::Q8;
  const bool to_bf16 = !q8 && (compute == DType::BF16 || w.dtype != DType::F32);  // as cpu/linear.cc
  p->storage = to_bf16 ? DType::BF16 : DType::F32;
  p->tensor_cores = compute == DType::BF16;
  p->nbytes = size_t(p->n * p->ldw) * (to_bf16 ? 2 : 4);
  check_cuda(cudaMalloc(&p->data, p->nbytes), "packed weight allocation");
  const int64_t total = p->n * p->ldw;
  const unsigned grid = grid_for(total, 256, c.sms);
  if (q8) {
    const unsigned qgrid = grid_for(p->n * ((p->k + kQ8Block - 1) / kQ8Block), 256, c.sms);
    float* dst = static_cast<float*>(p->data);
    switch (w.dtype) {
      case DType::F32: pack_q8_kernel<WF32><<<qgrid, 256, 0, c.stream>>>(w.f32(), dst, p->n, p->k, p->ldw); break;
      case DType::BF16: pack_q8_kernel<WBF16><<<qgrid, 256, 0, c.stream>>>(w.ptr<uint16_t>(), dst, p->n, p->k, p->ldw); break;
      case DType::F16: pack_q8_kernel<WF16><<<qgrid, 256, 0, c.stream>>>(w.ptr<uint16_t>(), dst, p->n, p->k, p->ldw); break;
      default: fail(code::kDType, "pack_linear: unsupported weight dtype");
    }
    check_launch("pack_linear (q8)");
    return p;
  }
  switch (w.dtype) {
    case DType::F32: pack_kernel<WF32><<<grid, 256, 0, c.stream>>>(w.f32(), p->data, to_bf16, p->n, p->k, p->ldw); break;
    case DType::BF16: pack_kernel<WBF16><<<grid, 256, 0, c.stream>>>(w.ptr<uint16_t>(), p->data, to_bf16, p->n, p->k, p->ldw); break;
    case DType::F16: pack_kernel<WF16><<<grid, 256, 0, c.stream>>>(w.ptr<uint16_t>(), p->data, to_bf16, p->n, p->k, p->ldw); break;
    default: fail(code::kDType, "pack_linear: unsupported weight dtype");
  }
  check_launch("pack_linear");
  return p;
}

void linear(Context& c, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  const int64_t M = x.shape.rows(), K = x.shape[-1], N = w.shape[0];
  const float* bias = b ? b->f32() : nullptr;
  const Packed* any = w.buf->packed.get();
  if (any) {
    const auto* p = dynamic_cast<const PackedLinear*>(any);
    if (!p) fail(code::kInternal, "linear: the weight was packed by another backend");
    if (p->k != K || p->n != N) fail(code::kInternal, "linear: packed weight does not match its shape");
    if (M <= 8) return gemv(c, x.f32(), p->data, p->storage, p->ldw, bias, y.f32(), M, N, K);
    if (p->storage == DType::BF16 && p->tensor_cores)
      return gemm_bf16(c, x.f32(), static_cast<const uint16_t*>(p->data), p->ldw, bias, y.f32(), M, N, K);
    return gemm_f32(c, x.f32(), p->data, p->storage, p->ldw, bias, y.f32(), M, N, K);
  }
  // a plain weight tensor [N, K]: f32 compute whatever its storage (as the CPU backend)
  if (M <= 8) return gemv(c, x.f32(), w.buf->data, w.dtype, K, bias, y.f32(), M, N, K);
  gemm_f32(c, x.f32(), w.buf->data, w.dtype, K, bias, y.f32(), M, N, K);
}

}  // namespace latte::cuda
