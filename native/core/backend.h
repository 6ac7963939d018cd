// The backend contract: what a kernel set (cpu/, cuda/) must provide. The op layer (ops.cc) has
// already checked shapes and dtypes and allocated outputs; a backend only computes.
// Layouts (PyTorch order): activations [..., features]; attention q [B,Sq,H,d], k/v [B,Skv,G,d];
// logits [B,H,Sq,Ni]; images NCHW; linear weights [out, in] (nn.Linear).
#pragma once
#include <functional>
#include <memory>

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
  // kernels
  virtual std::shared_ptr<Packed> pack_linear(const Tensor& w, DType compute) = 0;
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) = 0;
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& y) = 0;
  virtual void rms_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, bool channels, Tensor& y) = 0;
  virtual void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) = 0;
  virtual void rope(const RopeArgs& a) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  virtual void softmax(const Tensor& x, Tensor& y) = 0;
  virtual void unary(Unary op, const Tensor& x, Tensor& y) = 0;
  virtual void binary(Binary op, const Tensor& a, const Tensor& b, Tensor& y) = 0;  // b broadcasts over a's leading dims
  virtual void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, Tensor& y) = 0;
  virtual void relu_linear_attention(const Tensor& qkv, int head_dim, float eps, Tensor& y) = 0;  // DC-AE
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& y) = 0;
  virtual void modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& y) = 0;
  virtual void gated_add(const Tensor& h, const Tensor& gate, const Tensor& x, Tensor& y) = 0;
  virtual void conv2d(const Conv2dArgs& a) = 0;
  virtual void pixel_shuffle(const Tensor& x, int r, Tensor& y) = 0;
  virtual void upsample_nearest(const Tensor& x, int f, Tensor& y) = 0;
  virtual void convert(const Tensor& x, Tensor& y) = 0;
  virtual void concat(const Tensor& a, const Tensor& b, int axis, Tensor& y) = 0;
  virtual void permute(const Tensor& x, const int* perm, Tensor& y) = 0;  // y dim i = x dim perm[i]
  virtual void slice(const Tensor& x, int axis, int64_t start, Tensor& y) = 0;  // y = x[.., start:start+y.shape[axis], ..]
  // in place: dst[b, at : at + S] = src[b] over axis 1, `at` an i32 [1] read when it runs; rows that
  // would land past dst's end are not written (the CPU throws E_INDEX)
  virtual void write_rows(const Tensor& src, const Tensor& at, Tensor& dst) = 0;
  virtual void zero(Tensor& y) = 0;
  virtual void advance(const Tensor& at, int64_t n, Tensor& y) = 0;  // i32 [1]: y = at + n
  virtual void normal_noise(uint64_t seed, uint64_t offset, Tensor& y) = 0;  // core/rng.h
  // one token id per row of logits [rows, V] -> i32 [rows] (core/sampling.h); every row draws
  // uniform(seed, step), so a batch of requests passes one op per request or distinct seeds.
  // step_at (i32 [1], optional): the step, read when it runs instead of `step`
  virtual void sample_tokens(const Tensor& logits, float temperature, int top_k, float top_p, uint64_t seed, uint64_t step, const Tensor* step_at, Tensor& ids) = 0;
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace latte
