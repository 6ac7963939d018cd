// The kernel list: every kernel a backend provides, written once. K(ret, name, params, args) per
// row; the backend contract (core/backend.h), each backend's kernel declarations (cpu/cpu_kernels.h,
// cuda/cuda_kernels.h) and each backend's forwarding to its kernels are generated from it, so a
// kernel's signature lives here and in its two definitions only. Every backend kernel also takes its
// backend's context first (cpu::Context, cuda::Context): `name(ctx, args...)`.
// Layouts (PyTorch order): activations [..., features]; attention q [B,Sq,H,d], k/v [B,Skv,G,d];
// logits [B,H,Sq,Ni]; images NCHW; linear weights [out, in] (nn.Linear).
#pragma once

#define LATTE_KERNELS(K)                                                                                       \
  K(std::shared_ptr<Packed>, pack_linear, (const Tensor& w, DType compute), (w, compute))                      \
  K(void, linear, (const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y), (x, w, b, y))                \
  K(void, embedding, (const Tensor& table, const Tensor& ids, Tensor& y), (table, ids, y))                     \
  K(void, rms_norm, (const Tensor& x, const Tensor* w, const Tensor* b, float eps, bool channels, Tensor& y),   \
    (x, w, b, eps, channels, y))                                                                               \
  K(void, layer_norm, (const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y), (x, w, b, eps, y)) \
  K(void, rope, (const RopeArgs& a), (a))                                                                      \
  K(void, attention, (const AttentionArgs& a), (a))                                                            \
  K(void, softmax, (const Tensor& x, Tensor& y), (x, y))                                                       \
  K(void, unary, (Unary op, const Tensor& x, Tensor& y), (op, x, y))                                           \
  /* b broadcasts over a's leading dims */                                                                     \
  K(void, binary, (Binary op, const Tensor& a, const Tensor& b, Tensor& y), (op, a, b, y))                     \
  K(void, axpby, (float alpha, const Tensor& a, float beta, const Tensor& b, Tensor& y), (alpha, a, beta, b, y)) \
  /* DC-AE's ReLU linear attention over packed qkv */                                                          \
  K(void, relu_linear_attention, (const Tensor& qkv, int head_dim, float eps, Tensor& y), (qkv, head_dim, eps, y)) \
  K(void, swiglu, (const Tensor& gate, const Tensor& up, Tensor& y), (gate, up, y))                            \
  K(void, modulate, (const Tensor& x, const Tensor& shift, const Tensor& scale, Tensor& y), (x, shift, scale, y)) \
  K(void, gated_add, (const Tensor& h, const Tensor& gate, const Tensor& x, Tensor& y), (h, gate, x, y))       \
  K(void, conv2d, (const Conv2dArgs& a), (a))                                                                  \
  K(void, pixel_shuffle, (const Tensor& x, int r, Tensor& y), (x, r, y))                                       \
  K(void, upsample_nearest, (const Tensor& x, int f, Tensor& y), (x, f, y))                                    \
  K(void, convert, (const Tensor& x, Tensor& y), (x, y))                                                       \
  K(void, concat, (const Tensor& a, const Tensor& b, int axis, Tensor& y), (a, b, axis, y))                    \
  /* y dim i = x dim perm[i] */                                                                                \
  K(void, permute, (const Tensor& x, const int* perm, Tensor& y), (x, perm, y))                                \
  /* y = x[.., start:start+y.shape[axis], ..] */                                                               \
  K(void, slice, (const Tensor& x, int axis, int64_t start, Tensor& y), (x, axis, start, y))                   \
  /* in place: dst[b, at : at + S] = src[b] over axis 1, `at` an i32 [1] read when it runs; rows that would    \
     land past dst's end are not written (the CPU throws E_INDEX) */                                           \
  K(void, write_rows, (const Tensor& src, const Tensor& at, Tensor& dst), (src, at, dst))                      \
  K(void, zero, (Tensor& y), (y))                                                                              \
  /* i32 [1]: y = at + n */                                                                                    \
  K(void, advance, (const Tensor& at, int64_t n, Tensor& y), (at, n, y))                                       \
  K(void, normal_noise, (uint64_t seed, uint64_t offset, Tensor& y), (seed, offset, y))                        \
  /* one token id per row of logits [rows, V] -> i32 [rows] (core/sampling.h); every row draws               \
     uniform(seed, step), so a batch of requests passes one op per request or distinct seeds; step_at        \
     (i32 [1], optional): the step, read when it runs instead of `step` */                                     \
  K(void, sample_tokens, (const Tensor& logits, float temperature, int top_k, float top_p, uint64_t seed, uint64_t step, const Tensor* step_at, Tensor& ids), \
    (logits, temperature, top_k, top_p, seed, step, step_at, ids))

// Expands a parenthesised list: LATTE_EXPAND (a, b) -> a, b
#define LATTE_EXPAND(...) __VA_ARGS__
// A backend kernel's declaration in its own namespace, with its context first.
#define LATTE_DECLARE_BACKEND_KERNEL(ret, name, params, args) ret name(Context& ctx, LATTE_EXPAND params);
// A backend's override of the contract's kernel: forwards to its kernel with its context `ctx_`.
#define LATTE_FORWARD_TO_KERNEL(ret, name, params, args) \
  ret name params override { return ::latte::LATTE_BACKEND_NS::name(ctx_, LATTE_EXPAND args); }
