// CPU kernels behind the backend contract. Each file implements one family; OpenMP threads come
// from the stream thread's team (bind_thread sets its size), the same pool oneDNN uses.
#pragma once
#include <vector>
#include "core/arena.h"
#include "cpu/host_memory.h"
#include "core/backend.h"
#include "latte/engine.h"

namespace latte::cpu {

CpuFeatures detect_features();  // cpuid + the AMX permission request

// linear.cc (oneDNN matmul, packed weights) and gemv.cc (own M = 1 kernels for 16-bit weights)
std::shared_ptr<Packed> pack_linear(const Tensor& w, DType compute, const CpuFeatures& f);
void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, Arena& arena, const CpuFeatures& f);
void gemv_bf16(const float* x, const uint16_t* w, const float* b, float* y, int64_t n, int64_t k, const CpuFeatures& f);  // plain [n, k]
std::vector<uint16_t, HostAllocator<uint16_t>> pack_gemv_bf16(const uint16_t* rows, int64_t n, int64_t k);  // gemv.cc's streaming layout
void gemv_bf16_packed(const float* x, const uint16_t* w, const float* b, float* y, int64_t n, int64_t k, const CpuFeatures& f);
void gemv_f32(const float* x, const float* w, bool transposed, const float* b, float* y, int64_t n, int64_t k);
void convert_rows(const Tensor& src, float* dst);  // any float dtype -> f32
std::string onednn_version();

void embedding(const Tensor& table, const Tensor& ids, Tensor& y);
void rms_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, bool channels, Tensor& y);
void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y);
void rope(const RopeArgs& a);
void attention(const AttentionArgs& a, Arena& arena);
void softmax(const Tensor& x, Tensor& y);
void unary(Unary op, const Tensor& x, Tensor& y);
void binary(Binary op, const Tensor& a, const Tensor& b, Tensor& y);
void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, Tensor& y);
void relu_linear_attention(const Tensor& qkv, int head_dim, float eps, Tensor& y);  // linear_attention.cc
void swiglu(const Tensor& gate, const Tensor& up, Tensor& y);
void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& y);
void gated_add(const Tensor& h, const Tensor& gate, const Tensor& x, Tensor& y);
void conv2d(const Conv2dArgs& a);
void pixel_shuffle(const Tensor& x, int r, Tensor& y);
void upsample_nearest(const Tensor& x, int f, Tensor& y);
void convert(const Tensor& x, Tensor& y);
void concat(const Tensor& a, const Tensor& b, int axis, Tensor& y);
void permute(const Tensor& x, const int* perm, Tensor& y);
void slice(const Tensor& x, int axis, int64_t start, Tensor& y);
void write_rows(const Tensor& src, const Tensor& at, Tensor& dst);
void normal_noise(uint64_t seed, uint64_t offset, Tensor& y);
void sample_tokens(const Tensor& logits, float temperature, int top_k, float top_p, uint64_t seed, uint64_t step, const Tensor* step_at, Tensor& ids);

}  // namespace latte::cpu
