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
// gemv_q8.cc: 8-bit weights (core/quant.h) in the GEMV's layout (described there)
struct Q8Weights {
  int64_t n = 0, k = 0, pairs = 0;                   // pairs: k / 64 rounded up
  std::vector<uint8_t, HostAllocator<uint8_t>> q;    // biased int8 (q + 128)
  std::vector<uint16_t, HostAllocator<uint16_t>> d;  // f16 scales, one per block of 32
  size_t bytes() const { return q.size() + d.size() * 2; }
};
Q8Weights pack_q8(const float* w, int64_t n, int64_t k);  // quantises f32 rows [n, k]
// W as plain f32 rows [n, k]: the weights q * d the GEMV uses
void dequantise_q8(const Q8Weights& w, float* out);
// W straight into oneDNN's blocked matmul layout for f32 (BA16a64b) or bf16 (BA16a64b2a: 32 k a tile), dims [k, n]
// padded to kpad, npad with zeros; false (nothing written) for padding it does not handle
bool dequantise_q8_blocked(const Q8Weights& w, void* out, bool bf16, const int64_t* strides, int64_t kpad, int64_t npad, const CpuFeatures& f);
// y [m, n] = x [m, k] W^T + b, x quantised per block of 32 (scratch from `arena`)
void gemv_q8(const float* x, int64_t m, const Q8Weights& w, const float* b, float* y, const CpuFeatures& f, Arena& arena);
void convert_rows(const Tensor& src, float* dst);  // any float dtype -> f32
std::string onednn_version();

}  // namespace latte::cpu
