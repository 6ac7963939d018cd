// CUDA kernels behind the backend contract (mirrors cpu/cpu_kernels.h). Each file implements one
// family; every launcher enqueues on the Context's stream and returns without waiting. Launchers
// check their launch (configuration errors throw at once); faults inside a kernel surface at the next
// synchronize (a read or fence), as the engine's stream contract allows.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"

namespace latte::cuda {

// What every launcher needs: the stream, device limits and a reusable workspace.
class Context {
 public:
  cudaStream_t stream = nullptr;
  int device = 0;
  int sms = 1;                 // multiprocessors: sizes split-K and grids
  size_t smem_optin = 48 << 10;  // largest dynamic shared memory a block may opt into
  // Device scratch valid until the next workspace() call on this stream (stream-ordered reuse).
  void* workspace(size_t bytes);
  // Out-of-range ids found by a kernel (embedding): (position << 32 | id) of the first one, or ~0.
  unsigned long long* index_error = nullptr;
  bool index_check_pending = false;  // an id-checking kernel ran since the last synchronize
  unsigned long long* host_error = nullptr;  // pinned: where synchronize() reads index_error back
  // Waits for the stream, then reports what kernels found on the way (an id out of range).
  void synchronize();
  cudaMemPool_t pool = nullptr;      // the backend's stream-ordered pool (workspace comes from it)
  void release_workspace();
  // Graphs alive that captured a workspace address: while any is, a grown workspace keeps its old
  // block (kept_), freed once none is left. Shared with the graphs' deleters (any thread).
  std::shared_ptr<std::atomic<int>> live_graphs = std::make_shared<std::atomic<int>>(0);
  void release_kept();

 private:
  void* ws_ = nullptr;
  std::vector<void*> kept_;
  size_t ws_bytes_ = 0;
};

[[noreturn]] void throw_cuda(cudaError_t e, const char* what);
inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}
// After a launch: a bad configuration (grid, shared memory) is reported here.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// A packed nn.Linear weight on the device: [n, ldw] row-major, ldw = k rounded up to 8 with zero
// padding, so 16-byte vector loads of any row are always in bounds and aligned.
struct PackedLinear final : Packed {
  int64_t n = 0, k = 0, ldw = 0;
  DType storage = DType::F32;  // F32 or BF16 (bf16-rounded weights, as the CPU backend keeps them)
  bool tensor_cores = false;   // compute bf16: activations round to bf16 in the mma GEMM (M > 8)
  void* data = nullptr;        // cudaMalloc'd; freed with cudaFree (synchronising), any thread
  size_t nbytes = 0;
  size_t bytes() const override { return nbytes; }
  ~PackedLinear() override;
};

// The backend's kernels: the rows of core/kernel_list.h, each `name(Context&, ...)`, one family per
// file (linear.cu, attention.cu, norm.cu, rope.cu, elementwise.cu, linear_attention.cu, conv.cu,
// layout.cu). Greedy sampling runs on the device; sampled rows go through core/sampling.h on the host
// (exact CPU tokens).
LATTE_KERNELS(LATTE_DECLARE_BACKEND_KERNEL)

// helpers shared by those files: linear.cu, gemv.cu, gemm_bf16.cu
// y[M, N] = x[M, K] W^T + b, W [N, ldw] of dtype wt (f32, bf16, f16), M <= 8, fp32 accumulate
void gemv(Context& c, const float* x, const void* w, DType wt, int64_t ldw, const float* b, float* y, int64_t M, int64_t N, int64_t K);
// SIMT fp32 tiled GEMM (f32 compute; 16-bit weights widen on load)
void gemm_f32(Context& c, const float* x, const void* w, DType wt, int64_t ldw, const float* b, float* y, int64_t M, int64_t N, int64_t K);
// tensor cores: activations rounded to bf16, bf16 weights, fp32 accumulate (mma.sync m16n8k16)
void gemm_bf16(Context& c, const float* x, const uint16_t* w, int64_t ldw, const float* b, float* y, int64_t M, int64_t N, int64_t K);

// tensor-core attention (attention_tc.cu): runs the call and returns true when it allows bf16 and
// fits the kernel (head dim a multiple of 16 up to 128, 16 or more queries); false: attention.cu's
bool attention_tc(Context& c, const AttentionArgs& a);
// split-KV decode attention (attention_decode.cu): runs the call and returns true for a few queries over
// 256 or more key rows without an image block; false: attention.cu's
bool attention_decode(Context& c, const AttentionArgs& a);
// element-wise dtype conversion of n values between device buffers (f32 / bf16 / f16)
void convert_values(Context& c, const void* src, DType from, void* dst, DType to, int64_t n);

}  // namespace latte::cuda
