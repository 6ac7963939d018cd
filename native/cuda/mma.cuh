// Tensor-core building blocks shared by the bf16 kernels (gemm_bf16.cu, attention_tc.cu): one
// mma.sync m16n8k16 (bf16 in, f32 accumulate) and bf16 pair packing. Fragment layouts (PTX ISA,
// "Matrix Fragments for mma.m16n8k16"), with g = lane / 4 and t = lane % 4:
//   A 16x16 row-major: a0 (row g, cols 2t, 2t+1), a1 (row g+8, same), a2 (row g, cols 2t+8, +9), a3 (row g+8, same)
//   B 16x8 col-major:  b0 (rows 2t, 2t+1, col g), b1 (rows 2t+8, 2t+9, col g)
//   C 16x8:            c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same)
#pragma once
#include <cstdint>

#include "cuda/cuda_common.cuh"

namespace latte::cuda {

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return uint32_t(f32_to_bf16_d(lo)) | (uint32_t(f32_to_bf16_d(hi)) << 16);
}
__device__ __forceinline__ uint32_t ld32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// c += a b for one 16x8x16 tile
__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, const uint32_t* b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // the probe refuses devices below sm_80, so this is never reached
#endif
}

}  // namespace latte::cuda
