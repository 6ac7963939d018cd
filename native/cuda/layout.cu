// Data movement (mirrors cpu/layout.cc): embedding gather, pixel shuffle, nearest upsampling, dtype
// conversion, permute / concat / slice copies, seeded noise and token sampling.
#include <algorithm>
#include <vector>

#include "core/rng.h"
#include "core/sampling.h"
#include "cuda/cuda_common.cuh"

namespace latte::cuda {
namespace {

constexpr int kThreads = 256;

// ---- embedding: ids are checked on the device; a bad one writes zeros and records the first
// (position, id) in the context's error word, reported by the next synchronize as E_INDEX ------
template <class W>
__global__ void embedding_kernel(const typename W::T* __restrict__ table, const int32_t* __restrict__ ids, float* __restrict__ y,
                                 int64_t n, int64_t V, int64_t D, unsigned long long* err) {
  LATTE_GRID_STRIDE(i, n * D) {
    const int64_t t = i / D, j = i % D;
    const int32_t id = ids[t];
    if (id < 0 || id >= V) {
      if (j == 0) atomicMin(err, (static_cast<unsigned long long>(t) << 32) | static_cast<uint32_t>(id));
      y[i] = 0.f;
    } else {
      y[i] = W::get(table, int64_t(id) * D + j);
    }
  }
}

// PyTorch pixel_shuffle: out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w]
__global__ void pixel_shuffle_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t total, int64_t C, int64_t Ho, int64_t Wo, int r) {
  LATTE_GRID_STRIDE(o, total) {
    const int64_t wo = o % Wo, ho = (o / Wo) % Ho, c = (o / (Wo * Ho)) % C, n = o / (Wo * Ho * C);
    const int64_t H = Ho / r, W = Wo / r, h = ho / r, i = ho % r, w = wo / r, j = wo % r;
    y[o] = x[((n * C * r * r + c * r * r + i * r + j) * H + h) * W + w];
  }
}

__global__ void upsample_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t total, int64_t H, int64_t W, int f) {
  LATTE_GRID_STRIDE(o, total) {
    const int64_t Wo = W * f, Ho = H * f, wo = o % Wo, ho = (o / Wo) % Ho, p = o / (Wo * Ho);
    y[o] = x[(p * H + ho / f) * W + wo / f];
  }
}

__device__ __forceinline__ float load_as_f32(const void* p, DType t, int64_t i) {
  if (t == DType::F32) return static_cast<const float*>(p)[i];
  const uint16_t h = static_cast<const uint16_t*>(p)[i];
  return t == DType::BF16 ? bf16_to_f32_d(h) : f16_to_f32_d(h);
}
__global__ void convert_kernel(const void* __restrict__ src, DType from, void* __restrict__ dst, DType to, int64_t n) {
  LATTE_GRID_STRIDE(i, n) {
    const float v = load_as_f32(src, from, i);
    if (to == DType::F32)
      static_cast<float*>(dst)[i] = v;
    else
      static_cast<uint16_t*>(dst)[i] = to == DType::BF16 ? f32_to_bf16_d(v) : f32_to_f16_d(v);
  }
}

// output element o -> input offset through the permuted strides (element type U: 2 or 4 bytes)
struct PermuteDims {
  int nd;
  int64_t out_shape[kMaxDims], strides[kMaxDims];
};
template <class U>
__global__ void permute_kernel(const U* __restrict__ x, U* __restrict__ y, int64_t n, const PermuteDims pd) {
  LATTE_GRID_STRIDE(o, n) {
    int64_t rem = o, off = 0;
    for (int i = pd.nd - 1; i >= 0; i--) {
      off += (rem % pd.out_shape[i]) * pd.strides[i];
      rem /= pd.out_shape[i];
    }
    y[o] = x[off];
  }
}

// rows x width units, between pitched buffers (pitches and width in units of U)
template <class U>
__global__ void copy_rows_kernel(U* __restrict__ dst, int64_t dpitch, const U* __restrict__ src, int64_t spitch, int64_t width, int64_t rows) {
  LATTE_GRID_STRIDE(i, rows * width) {
    const int64_t r = i / width, c = i % width;
    dst[r * dpitch + c] = src[r * spitch + c];
  }
}

template <class U>
void copy_rows_as(Context& c, void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, int64_t rows) {
  const int64_t u = sizeof(U), w = int64_t(width) / u;
  copy_rows_kernel<U><<<grid_for(rows * w, kThreads, c.sms), kThreads, 0, c.stream>>>(static_cast<U*>(dst), int64_t(dpitch) / u, static_cast<const U*>(src),
                                                                                     int64_t(spitch) / u, w, rows);
  check_launch("copy");
}
// The widest unit (16/8/4/2/1 bytes) that divides every address, pitch and width.
void copy_rows(Context& c, void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, int64_t rows) {
  if (width == 0 || rows == 0) return;
  const uintptr_t all = reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | dpitch | spitch | width;
  if (all % 16 == 0) return copy_rows_as<uint4>(c, dst, dpitch, src, spitch, width, rows);
  if (all % 8 == 0) return copy_rows_as<uint2>(c, dst, dpitch, src, spitch, width, rows);
  if (all % 4 == 0) return copy_rows_as<uint32_t>(c, dst, dpitch, src, spitch, width, rows);
  if (all % 2 == 0) return copy_rows_as<uint16_t>(c, dst, dpitch, src, spitch, width, rows);
  copy_rows_as<uint8_t>(c, dst, dpitch, src, spitch, width, rows);
}

// core/rng.h's own functions on the device: the CPU's values, except (rarely) by one float ulp where
// CUDA's double log/cos round differently from glibc's (tested: all within 1 ulp)
__global__ void noise_kernel(float* __restrict__ y, int64_t n, uint64_t key, uint64_t offset) {
  LATTE_GRID_STRIDE(i, n) y[i] = rng::normal(key, offset + uint64_t(i));
}

// Greedy: exactly std::max_element's choice (the CPU path): the first maximum; NaNs are never
// chosen unless the first value is NaN (then index 0, as max_element returns).
__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* __restrict__ logits, int32_t* __restrict__ ids, int64_t rows, int64_t V) {
  __shared__ float sv[kThreads];
  __shared__ int64_t si[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = logits + r * V;
    float bv = -INFINITY;
    int64_t bi = V;  // "none yet"
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float v = row[i];
      if (v > bv || (v == bv && i < bi)) bv = v, bi = i;  // NaN compares false: skipped
    }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        const float ov = sv[threadIdx.x + s];
        const int64_t oi = si[threadIdx.x + s];
        if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) sv[threadIdx.x] = ov, si[threadIdx.x] = oi;
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) ids[r] = isnan(row[0]) || si[0] == V ? 0 : int32_t(si[0]);
    __syncthreads();
  }
}

}  // namespace

void embedding(Context& c, const Tensor& table, const Tensor& ids, Tensor& y) {
  const int64_t V = table.shape[0], D = table.shape[1], n = ids.numel();
  const unsigned grid = grid_for(n * D, kThreads, c.sms);
  const int32_t* id = ids.ptr<int32_t>();
  switch (table.dtype) {
    case DType::F32: embedding_kernel<WF32><<<grid, kThreads, 0, c.stream>>>(table.f32(), id, y.f32(), n, V, D, c.index_error); break;
    case DType::BF16: embedding_kernel<WBF16><<<grid, kThreads, 0, c.stream>>>(table.ptr<uint16_t>(), id, y.f32(), n, V, D, c.index_error); break;
    case DType::F16: embedding_kernel<WF16><<<grid, kThreads, 0, c.stream>>>(table.ptr<uint16_t>(), id, y.f32(), n, V, D, c.index_error); break;
    default: fail(code::kDType, "embedding: unsupported table dtype");
  }
  check_launch("embedding");
  c.index_check_pending = true;
}

void pixel_shuffle(Context& c, const Tensor& x, int r, Tensor& y) {
  const int64_t total = y.numel();
  pixel_shuffle_kernel<<<grid_for(total, kThreads, c.sms), kThreads, 0, c.stream>>>(x.f32(), y.f32(), total, y.shape[1], y.shape[2], y.shape[3], r);
  check_launch("pixel_shuffle");
}

void upsample_nearest(Context& c, const Tensor& x, int f, Tensor& y) {
  const int64_t total = y.numel();
  upsample_kernel<<<grid_for(total, kThreads, c.sms), kThreads, 0, c.stream>>>(x.f32(), y.f32(), total, x.shape[2], x.shape[3], f);
  check_launch("upsample_nearest");
}

void convert_values(Context& c, const void* src, DType from, void* dst, DType to, int64_t n) {
  if (from == to) {
    check_cuda(cudaMemcpyAsync(dst, src, size_t(n) * dtype_size(from), cudaMemcpyDeviceToDevice, c.stream), "convert copy");
    return;
  }
  if (from == DType::I32 || to == DType::I32) fail(code::kDType, "convert: integer tensors cannot convert");
  convert_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(src, from, dst, to, n);
  check_launch("convert");
}

void convert(Context& c, const Tensor& x, Tensor& y) { convert_values(c, x.buf->data, x.dtype, y.buf->data, y.dtype, x.numel()); }

void permute(Context& c, const Tensor& x, const int* perm, Tensor& y) {
  PermuteDims pd{};
  pd.nd = x.shape.ndim;
  int64_t in_stride[kMaxDims];
  for (int i = pd.nd - 1, s = 1; i >= 0; i--) {
    in_stride[i] = s;
    s *= int(x.shape.d[i]);
  }
  for (int i = 0; i < pd.nd; i++) {
    pd.strides[i] = in_stride[perm[i]];
    pd.out_shape[i] = y.shape.d[i];
  }
  const int64_t n = y.numel();
  const unsigned grid = grid_for(n, kThreads, c.sms);
  if (dtype_size(x.dtype) == 4)
    permute_kernel<uint32_t><<<grid, kThreads, 0, c.stream>>>(x.ptr<uint32_t>(), y.ptr<uint32_t>(), n, pd);
  else
    permute_kernel<uint16_t><<<grid, kThreads, 0, c.stream>>>(x.ptr<uint16_t>(), y.ptr<uint16_t>(), n, pd);
  check_launch("permute");
}

void concat(Context& c, const Tensor& a, const Tensor& b, int axis, Tensor& y) {
  int64_t outer = 1;
  for (int i = 0; i < axis; i++) outer *= a.shape[i];
  const size_t ea = size_t(a.numel() / outer) * dtype_size(a.dtype), eb = size_t(b.numel() / outer) * dtype_size(b.dtype);
  char* py = static_cast<char*>(y.buf->data);
  copy_rows(c, py, ea + eb, a.buf->data, ea, ea, outer);
  copy_rows(c, py + ea, ea + eb, b.buf->data, eb, eb, outer);
}

void slice(Context& c, const Tensor& x, int axis, int64_t start, Tensor& y) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= x.shape[i];
  for (int i = axis + 1; i < x.shape.ndim; i++) inner *= x.shape[i];
  const size_t row = size_t(inner) * dtype_size(x.dtype);
  const size_t src_stride = size_t(x.shape[axis]) * row, dst_stride = size_t(y.shape[axis]) * row;
  copy_rows(c, y.buf->data, dst_stride, static_cast<const char*>(x.buf->data) + size_t(start) * row, src_stride, dst_stride, outer);
}

// dst[b, at + s] = src[b, s] with `at` read on the device (a recorded decode step appends at the
// cache's current length); rows past the end are skipped (the model checks its capacity first)
__global__ void write_rows_kernel(float* __restrict__ dst, const float* __restrict__ src, const int32_t* __restrict__ at, int64_t B, int64_t N, int64_t S,
                                  int64_t row) {
  const int64_t pos = *at;
  LATTE_GRID_STRIDE(i, B * S * row) {
    const int64_t b = i / (S * row), r = i % (S * row) / row, e = i % row;
    if (pos >= 0 && pos + r < N) dst[(b * N + pos + r) * row + e] = src[i];
  }
}

void write_rows(Context& c, const Tensor& src, const Tensor& at, Tensor& dst) {
  const int64_t B = dst.shape[0], N = dst.shape[1], S = src.shape[1], row = dst.numel() / (B * N), n = B * S * row;
  write_rows_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(dst.f32(), src.f32(), at.ptr<int32_t>(), B, N, S, row);
  check_launch("write_rows");
}

__global__ void advance_kernel(const int32_t* __restrict__ at, int32_t n, int32_t* __restrict__ y) { *y = *at + n; }

void zero(Context& c, Tensor& y) { check_cuda(cudaMemsetAsync(y.buf->data, 0, y.nbytes(), c.stream), "cudaMemsetAsync"); }

void advance(Context& c, const Tensor& at, int64_t n, Tensor& y) {
  advance_kernel<<<1, 1, 0, c.stream>>>(at.ptr<int32_t>(), int32_t(n), y.ptr<int32_t>());
  check_launch("advance");
}

void normal_noise(Context& c, uint64_t seed, uint64_t offset, Tensor& y) {
  const int64_t n = y.numel();
  noise_kernel<<<grid_for(n, kThreads, c.sms), kThreads, 0, c.stream>>>(y.f32(), n, rng::key(seed), offset);
  check_launch("noise");
}

void sample_tokens(Context& c, const Tensor& logits, float temperature, int top_k, float top_p, uint64_t seed, uint64_t step, const Tensor* step_at, Tensor& ids) {
  const int64_t V = logits.shape[-1], rows = logits.numel() / V;
  if (!(temperature > 0.f)) {
    argmax_kernel<<<unsigned(std::min<int64_t>(rows, 1 << 20)), kThreads, 0, c.stream>>>(logits.f32(), ids.ptr<int32_t>(), rows, V);
    check_launch("sample (greedy)");
    return;
  }
  // Sampled: the CPU's own code on the downloaded rows, so the token is the CPU's bit for bit:
  // sorting, float sums and the seeded draw are all the same. That is host code, which a graph
  // cannot hold: refusing the capture here (before anything waits on the stream) leaves a program
  // that draws running op by op. Earlier faults are reported first.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(c.stream, &capturing), "sample");
  if (capturing != cudaStreamCaptureStatusNone) fail(code::kInternal, "sample: a sampled draw cannot be captured");
  c.synchronize();
  std::vector<float> host(size_t(rows * V));
  int32_t at = 0;  // the step counted on the device, when given
  check_cuda(cudaMemcpyAsync(host.data(), logits.f32(), host.size() * sizeof(float), cudaMemcpyDeviceToHost, c.stream), "sample download");
  if (step_at) check_cuda(cudaMemcpyAsync(&at, step_at->ptr<int32_t>(), sizeof at, cudaMemcpyDeviceToHost, c.stream), "sample download");
  check_cuda(cudaStreamSynchronize(c.stream), "sample download");
  sampling::Params prm{temperature, top_k, top_p, seed, step_at ? sampling::step_of(at) : step};
  std::vector<float> z, p;
  std::vector<char> keep;
  std::vector<int32_t> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; r++) out[size_t(r)] = sampling::sample_row(host.data() + r * V, V, prm, z, p, keep);
  check_cuda(cudaMemcpyAsync(ids.ptr<int32_t>(), out.data(), out.size() * sizeof(int32_t), cudaMemcpyHostToDevice, c.stream), "sample upload");
  check_cuda(cudaStreamSynchronize(c.stream), "sample upload");  // `out` dies with this frame
}

}  // namespace latte::cuda
