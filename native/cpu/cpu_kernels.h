// CPU kernels behind the backend contract. Each file implements one family; OpenMP threads come
// from the stream thread's team (bind_thread sets its size), the same pool oneDNN uses.
#pragma once
#include <vector>
#include <string>

#include "core/arena.h"
#include "core/backend.h"
#include "core/backend_info.h"
#include "cpu/host_memory.h"

namespace latte::cpu {

CpuFeatures detect_features();  // cpuid + the AMX permission request

// What every CPU kernel may use: the machine's features and a scratch arena (reset after each kernel).
struct Context {
  CpuFeatures features;
  Arena arena;
};

// The backend's kernels: the rows of core/kernel_list.h, each `name(Context&, ...)`. One family per
// file: linear.cc (oneDNN matmul, packed weights), attention.cc (+ flash_attention.cc, its tiled
// path), norm.cc, rope.cc, elementwise.cc, linear_attention.cc, conv.cc, layout.cc (embedding,
// shape moves, noise, sampling).
LATTE_KERNELS(LATTE_DECLARE_BACKEND_KERNEL)

// helpers shared by those files: gemv.cc (own M = 1 kernels for 16-bit weights) and linear.cc
void gemv_bf16(const float* x, const uint16_t* w, const float* b, float* y, int64_t n, int64_t k, const CpuFeatures& f);  // plain [n, k]
std::vector<uint16_t, HostAllocator<uint16_t>> pack_gemv_bf16(const uint16_t* rows, int64_t n, int64_t k);  // gemv.cc's streaming layout
void gemv_bf16_packed(const float* x, const uint16_t* w, const float* b, float* y, int64_t n, int64_t k, const CpuFeatures& f);
void gemv_f32(const float* x, const float* w, bool transposed, const float* b, float* y, int64_t n, int64_t k);
void convert_rows(const Tensor& src, float* dst);  // any float dtype -> f32
std::string onednn_version();

}  // namespace latte::cpu
