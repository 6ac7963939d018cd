// The op list: every op the engine offers, one row each. X(id, name, min_inputs, max_inputs, infer,
// run, flags). The enum `Op` (model code), the registry (core/ops.cc) and the names JavaScript sees
// (bindings, lib/native.ts OP_NAMES, checked equal by test/op-list.test.ts) all come from it.
//   infer/run: infer_<infer> checks operands and attributes and states the outputs; run_<run> calls
//              the backend's kernels (both in core/ops.cc)
//   flags:     kPackedOperand1 — operand 1 may be a packed weight (linear's weight)
//              kInPlace        — writes into operand 0 (a K/V cache update): model code only, never
//                                offered to JavaScript, whose tensors stay immutable
//              kNotRecordable  — cannot be part of a program (a replay repeats the op's attributes
//                                and buffers: packing allocates a weight)
//              kRecordableWithOperand1 — part of a program only with its optional operand 1, which
//                                carries what an attribute could not (sample: the step, read when
//                                it runs, so every replay draws anew)
#pragma once

#define LATTE_OPS(X)                                                                           \
  X(PackLinear, "pack_linear", 1, 1, pack_linear, pack_linear, kNotRecordable)                 \
  X(Linear, "linear", 2, 3, linear, linear, kPackedOperand1)                                   \
  X(Embedding, "embedding", 2, 2, embedding, embedding, 0)                                     \
  X(RmsNorm, "rms_norm", 1, 3, rms_norm, rms_norm, 0)                                          \
  X(LayerNorm, "layer_norm", 1, 3, layer_norm, layer_norm, 0)                                  \
  X(Rope, "rope", 2, 2, rope, rope, 0)                                                         \
  X(Attention, "attention", 3, 7, attention, attention, 0)                                     \
  X(Softmax, "softmax", 1, 1, same_f32, softmax, 0)                                            \
  X(Silu, "silu", 1, 1, same_f32, silu, 0)                                                     \
  X(Relu, "relu", 1, 1, same_f32, relu, 0)                                                     \
  X(Tanh, "tanh", 1, 1, same_f32, tanh, 0)                                                     \
  X(Gelu, "gelu", 1, 1, same_f32, gelu, 0)                                                     \
  X(Add, "add", 2, 2, binary, add, 0)                                                          \
  X(Mul, "mul", 2, 2, binary, mul, 0)                                                          \
  X(Axpby, "axpby", 2, 2, axpby, axpby, 0)                                                     \
  X(ReluLinearAttention, "relu_linear_attention", 1, 1, relu_linear_attention, relu_linear_attention, 0) \
  X(Swiglu, "swiglu", 2, 2, swiglu, swiglu, 0)                                                 \
  X(Modulate, "modulate", 3, 3, modulate, modulate, 0)                                         \
  X(GatedAdd, "gated_add", 3, 3, gated_add, gated_add, 0)                                      \
  X(Convert, "convert", 1, 1, convert, convert, 0)                                             \
  X(Concat, "concat", 2, 2, concat, concat, 0)                                                 \
  X(Permute, "permute", 1, 1, permute, permute, 0)                                             \
  X(Slice, "slice", 1, 1, slice, slice, 0)                                                     \
  X(Noise, "noise", 0, 0, noise, noise, 0)                                                     \
  X(Zeros, "zeros", 0, 0, zeros, zeros, 0)                                                     \
  X(Advance, "advance", 2, 2, advance, advance, 0)                                             \
  X(WriteRows, "write_rows", 3, 3, write_rows, write_rows, kInPlace)                           \
  X(Sample, "sample", 1, 2, sample, sample, kRecordableWithOperand1)                                    \
  X(Conv2d, "conv2d", 2, 3, conv2d, conv2d, 0)                                                 \
  X(PixelShuffle, "pixel_shuffle", 1, 1, pixel_shuffle, pixel_shuffle, 0)                      \
  X(UpsampleNearest, "upsample_nearest", 1, 1, upsample, upsample, 0)
