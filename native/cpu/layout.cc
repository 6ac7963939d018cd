// Data movement: embedding gather, pixel shuffle, nearest upsampling, dtype conversion.
#include <cstring>

#include "core/rng.h"
#include "core/sampling.h"
#include "cpu/cpu_kernels.h"

namespace latte::cpu {

void embedding(Context& ctx, const Tensor& table, const Tensor& ids, Tensor& y) {
  const int64_t V = table.shape[0], D = table.shape[1], n = ids.numel();
  const int32_t* id = ids.ptr<int32_t>();
  for (int64_t i = 0; i < n; i++)
    if (id[i] < 0 || id[i] >= V)
      fail(code::kIndex, "embedding: id " + std::to_string(id[i]) + " at position " + std::to_string(i) + " is outside [0, " + std::to_string(V) + ")");
  float* o = y.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const int64_t row = id[i];
    float* oi = o + i * D;
    if (table.dtype == DType::F32) {
      std::memcpy(oi, table.f32() + row * D, size_t(D) * 4);
    } else {
      const uint16_t* t = table.ptr<uint16_t>() + row * D;
      if (table.dtype == DType::BF16)
        for (int64_t j = 0; j < D; j++) oi[j] = bf16_to_f32(t[j]);
      else
        for (int64_t j = 0; j < D; j++) oi[j] = f16_to_f32(t[j]);
    }
  }
}

// PyTorch pixel_shuffle: out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w]
void pixel_shuffle(Context& ctx, const Tensor& x, int r, Tensor& y) {
  const int64_t N = y.shape[0], C = y.shape[1], Ho = y.shape[2], Wo = y.shape[3];
  const int64_t H = x.shape[2], W = x.shape[3];
  const float* xs = x.f32();
  float* ys = y.f32();
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t ho = 0; ho < Ho; ho++) {
        const int64_t h = ho / r, i = ho % r;
        float* yo = ys + ((n * C + c) * Ho + ho) * Wo;
        for (int64_t wo = 0; wo < Wo; wo++) {
          const int64_t w = wo / r, j = wo % r;
          yo[wo] = xs[((n * C * r * r + c * r * r + i * r + j) * H + h) * W + w];
        }
      }
}

void write_rows(Context& ctx, const Tensor& src, const Tensor& at, Tensor& dst) {
  const int64_t B = dst.shape[0], N = dst.shape[1], S = src.shape[1], pos = *at.ptr<int32_t>();
  if (pos < 0 || pos + S > N)
    fail(code::kIndex, "write_rows: rows [" + std::to_string(pos) + ", " + std::to_string(pos + S) + ") are outside the " + std::to_string(N) + " rows of " + dst.desc());
  const size_t row = size_t(dst.numel() / (B * N)) * dtype_size(dst.dtype);
  for (int64_t b = 0; b < B; b++)
    std::memcpy(static_cast<char*>(dst.buf->data) + (size_t(b * N + pos)) * row, static_cast<const char*>(src.buf->data) + size_t(b * S) * row, size_t(S) * row);
}

void upsample_nearest(Context& ctx, const Tensor& x, int f, Tensor& y) {
  const int64_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3];
  const float* xs = x.f32();
  float* ys = y.f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t p = 0; p < NC; p++)
    for (int64_t ho = 0; ho < H * f; ho++) {
      const float* xi = xs + (p * H + ho / f) * W;
      float* yo = ys + (p * H * f + ho) * W * f;
      for (int64_t wo = 0; wo < W * f; wo++) yo[wo] = xi[wo / f];
    }
}

void convert(Context& ctx, const Tensor& x, Tensor& y) {
  const int64_t n = x.numel();
  if (x.dtype == y.dtype) {
    std::memcpy(y.buf->data, x.buf->data, x.nbytes());
    return;
  }
  if (y.dtype == DType::F32) {
    convert_rows(x, y.f32());
    return;
  }
  // to 16-bit: go through f32 one element at a time
  const uint16_t* s16 = x.ptr<uint16_t>();
  const float* s32 = x.f32();
  uint16_t* o = y.ptr<uint16_t>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float v = x.dtype == DType::F32 ? s32[i] : x.dtype == DType::BF16 ? bf16_to_f32(s16[i]) : f16_to_f32(s16[i]);
    o[i] = y.dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
  }
}

void zero(Context& ctx, Tensor& y) { std::memset(y.buf->data, 0, y.nbytes()); }

void advance(Context& ctx, const Tensor& at, int64_t n, Tensor& y) { *y.ptr<int32_t>() = int32_t(*at.ptr<int32_t>() + n); }

void normal_noise(Context& ctx, uint64_t seed, uint64_t offset, Tensor& y) {
  const uint64_t k = rng::key(seed);
  const int64_t n = y.numel();
  float* o = y.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = rng::normal(k, offset + uint64_t(i));
}

void sample_tokens(Context& ctx, const Tensor& logits, float temperature, int top_k, float top_p, uint64_t seed, uint64_t step, const Tensor* step_at, Tensor& ids) {
  const int64_t V = logits.shape[-1], rows = logits.numel() / V;
  sampling::Params prm{temperature, top_k, top_p, seed, step_at ? sampling::step_of(*step_at->ptr<int32_t>()) : step};
  std::vector<float> z, p;
  std::vector<char> keep;
  for (int64_t r = 0; r < rows; r++) ids.ptr<int32_t>()[r] = sampling::sample_row(logits.f32() + r * V, V, prm, z, p, keep);
}

// Walks the output in order; each output index maps to an input offset through permuted strides.
void permute(Context& ctx, const Tensor& x, const int* perm, Tensor& y) {
  const int nd = x.shape.ndim;
  int64_t in_stride[kMaxDims], strides[kMaxDims];
  for (int i = nd - 1, s = 1; i >= 0; i--) {
    in_stride[i] = s;
    s *= int(x.shape.d[i]);
  }
  for (int i = 0; i < nd; i++) strides[i] = in_stride[perm[i]];
  const size_t es = dtype_size(x.dtype);
  const char* src = static_cast<const char*>(x.buf->data);
  char* dst = static_cast<char*>(y.buf->data);
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static) if (n >= (1 << 15))
  for (int64_t o = 0; o < n; o++) {
    int64_t rem = o, off = 0;
    for (int i = nd - 1; i >= 0; i--) {
      off += (rem % y.shape.d[i]) * strides[i];
      rem /= y.shape.d[i];
    }
    std::memcpy(dst + o * es, src + off * es, es);
  }
}

void concat(Context& ctx, const Tensor& a, const Tensor& b, int axis, Tensor& y) {
  int64_t outer = 1;
  for (int i = 0; i < axis; i++) outer *= a.shape[i];
  const size_t ea = size_t(a.numel() / (outer ? outer : 1)) * dtype_size(a.dtype);
  const size_t eb = size_t(b.numel() / (outer ? outer : 1)) * dtype_size(b.dtype);
  const char* pa = static_cast<const char*>(a.buf->data);
  const char* pb = static_cast<const char*>(b.buf->data);
  char* py = static_cast<char*>(y.buf->data);
  for (int64_t o = 0; o < outer; o++) {
    if (ea) std::memcpy(py + o * (ea + eb), pa + o * ea, ea);
    if (eb) std::memcpy(py + o * (ea + eb) + ea, pb + o * eb, eb);
  }
}

void slice(Context& ctx, const Tensor& x, int axis, int64_t start, Tensor& y) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= x.shape[i];
  for (int i = axis + 1; i < x.shape.ndim; i++) inner *= x.shape[i];
  const size_t es = dtype_size(x.dtype);
  const size_t row = size_t(inner) * es, src_stride = size_t(x.shape[axis]) * row, dst_stride = size_t(y.shape[axis]) * row;
  const char* px = static_cast<const char*>(x.buf->data) + size_t(start) * row;
  char* py = static_cast<char*>(y.buf->data);
  for (int64_t o = 0; o < outer; o++) std::memcpy(py + o * dst_stride, px + o * src_stride, dst_stride);
}

}  // namespace latte::cpu
