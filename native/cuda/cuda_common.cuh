// Device helpers shared by the CUDA kernels: dtype conversions with the host's exact rounding rules
// (core/dtype.h), typed weight loads, warp/block reductions and grid sizing.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "cuda/cuda_kernels.h"

namespace latte::cuda {

constexpr unsigned kFull = 0xffffffffu;

// ---- conversions: core/dtype.h's own functions (LATTE_HD), so the rounding is the host's -------
__device__ __forceinline__ float bf16_to_f32_d(uint16_t h) { return bf16_to_f32(h); }
__device__ __forceinline__ uint16_t f32_to_bf16_d(float f) { return f32_to_bf16(f); }
__device__ __forceinline__ float f16_to_f32_d(uint16_t h) { return f16_to_f32(h); }
__device__ __forceinline__ uint16_t f32_to_f16_d(float f) { return f32_to_f16(f); }

// ---- typed weight loads: the kernels are templated on these -----------------------------------
struct WF32 {
  using T = float;
  __device__ static __forceinline__ float get(const T* p, int64_t i) { return p[i]; }
  // 8 consecutive values from a 16-byte aligned address
  __device__ static __forceinline__ void get8(const T* p, float* v) {
    const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  }
};
struct WBF16 {
  using T = uint16_t;
  __device__ static __forceinline__ float get(const T* p, int64_t i) { return bf16_to_f32_d(p[i]); }
  __device__ static __forceinline__ void get8(const T* p, float* v) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      v[2 * i] = __uint_as_float(w[i] << 16);
      v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
};
struct WF16 {
  using T = uint16_t;
  __device__ static __forceinline__ float get(const T* p, int64_t i) { return f16_to_f32_d(p[i]); }
  __device__ static __forceinline__ void get8(const T* p, float* v) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      v[2 * i] = f16_to_f32_d(uint16_t(w[i] & 0xffffu));
      v[2 * i + 1] = f16_to_f32_d(uint16_t(w[i] >> 16));
    }
  }
};

// ---- reductions -------------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
// `sh` holds 32 values; the call ends with a barrier so `sh` can be reused at once.
template <class T>
__device__ T block_sum(T v, T* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  T r = lane < nw ? sh[lane] : T(0);
  r = warp_sum(r);
  __syncthreads();
  return r;
}
__device__ __forceinline__ float block_max(float v, float* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float r = lane < nw ? sh[lane] : -INFINITY;
  r = warp_max(r);
  __syncthreads();
  return r;
}

// ---- grids ------------------------------------------------------------------------------------
// Blocks for a grid-stride loop over n items: enough to fill the GPU, never above the x-limit.
inline unsigned grid_for(int64_t n, int threads, int sms) {
  const int64_t want = (n + threads - 1) / threads, cap = int64_t(sms) * 32;
  return unsigned(want < 1 ? 1 : want < cap ? want : cap);
}
#define LATTE_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace latte::cuda
