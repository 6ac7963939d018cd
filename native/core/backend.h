// The backend contract: what a kernel set (cpu/, cuda/) must provide. The op layer (ops.cc) has
// already checked shapes and dtypes and allocated outputs; a backend only computes. Its kernels are
// the rows of core/kernel_list.h.
#pragma once
#include <functional>
#include <memory>

#include "core/kernel_list.h"
#include "core/tensor.h"

namespace latte {

enum class Unary : int { Silu, Relu, GeluQuick, GeluTanh, GeluErf, Tanh };
enum class Binary : int { Add, Mul };
enum class Mask : int { None = 0, Causal = 1, PrefixCausal = 2 };

struct AttentionArgs {
  const Tensor *q, *k, *v;
  const Tensor* residual = nullptr;  // [B,H,Sq,Ni] added to image-key logits, times gate
  const Tensor* gate = nullptr;      // [B,H] per-head gate g_l(t)
  Tensor* out;                       // [B,Sq,H,d]
  Tensor* logits = nullptr;          // [B,H,Sq,Ni] post-residual image-key logits, when requested
  float scale;                       // usually 1/sqrt(d)
  Mask mask;
  int64_t prefix_len;  // PrefixCausal: keys [0,prefix_len) are causal text, the rest attend fully
  int64_t image_col0;  // first key column of the image block (residual / returned logits)
  // A preallocated K/V cache: i32 [1] in engine memory, read when the kernel runs: the cache held
  // `past` keys before the queries' own, so keys [0, past + Sq) exist (k/v have room for more) and
  // the queries are the last Sq of those. One recorded decode step (a CUDA graph) then serves every
  // length. No image block with it.
  const Tensor* past = nullptr;
  // Prompts padded to one length (a batch of requests, each row with its own prompt): i32 [B], row
  // b's real prompt length; keys [prompt_len[b], image_col0) are padding, never attended to
  const Tensor* prompt_len = nullptr;
  // The caller accepts bf16 rounding of q, k, v and the probabilities (tensor cores on CUDA); a
  // backend without such a path computes f32 as always
  bool bf16 = false;
};

struct RopeArgs {
  const Tensor *x, *pos;  // x [B,S,H,d]; pos i32 [A,B,S], A = number of position axes
  Tensor* out;
  float theta;
  int n_sections;      // the d/2 rotary frequencies split into sections; section s reads axis s % A
  int sections[4];
  bool restart;        // vision 2-D RoPE: each section restarts its frequency index
};

struct Conv2dArgs {
  const Tensor *x, *w, *b;  // x [N,Cin,H,W], w [Cout,Cin/groups,kh,kw], b [Cout] or null
  Tensor* out;
  int stride, padding, groups;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // memory
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p, size_t bytes) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device to device, on the stream
  // stream-thread setup (thread count, denormal flushing) and completion of queued device work
  virtual void bind_thread(int threads) = 0;
  virtual void synchronize() = 0;
  // Programs (runtime/program.h): a backend that can capture records the device work `enqueue`
  // issues as one launchable unit without running it (a CUDA graph); the others run ops one by one.
  virtual bool can_capture() const { return false; }
  virtual std::shared_ptr<void> capture(const std::function<void()>& /*enqueue*/) { return nullptr; }
  virtual void launch(const void* /*captured*/) {}
  // kernels: one pure virtual per row of the kernel list
#define LATTE_DECLARE_KERNEL(ret, name, params, args) virtual ret name params = 0;
  LATTE_KERNELS(LATTE_DECLARE_KERNEL)
#undef LATTE_DECLARE_KERNEL
};

}  // namespace latte
