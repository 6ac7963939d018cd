// y = W x + b for one row x (decode) with bf16 weights W [n, k]. Memory-bound: it streams the
// weights once, widening bf16 to f32 in registers, accumulating in f32. Compiled for AVX-512 and
// AVX2 with per-function targets; picked at run time from the CPU's features.
//
// Packed layout (pack_gemv_bf16): rows in blocks of kRows; inside a block, 16-element chunks of the
// block's rows alternate (chunk c of row i at (c * rows + i) * 16), then each row's k % 16 tail. The
// kernel then reads one linear stream, which the hardware prefetcher follows at full DRAM speed;
// four short interleaved row streams (plain [n, k]) reached only ~70% of it on Zen 3.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "cpu/cpu_kernels.h"
#include "cpu/vec_math.h"

namespace latte::cpu {
namespace {

constexpr int kRows = 4;     // rows per block: each x load feeds four weight rows
constexpr int64_t kChunk = 16;
constexpr int kPrefetch = 1024;  // bytes ahead of the stream (measured best of 0..8K on Zen 3)

float tail_dot(const float* x, const uint16_t* w, int64_t n) {
  float s = 0.f;
  for (int64_t j = 0; j < n; j++) s += x[j] * bf16_to_f32(w[j]);
  return s;
}

// Software prefetch kPrefetch bytes ahead of every cache line the next chunk step reads: in the
// packed layout one linear stream (stride * 2 bytes per step), in plain rows one stream per row
// (a new line every other 32-byte chunk).
inline void prefetch(const uint16_t* w, int64_t stride, int64_t pitch, int rows, int64_t c) {
  const char* p = reinterpret_cast<const char*>(w) + kPrefetch;
  if (pitch == kChunk) {
    for (int64_t off = 0; off < stride * 2; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
  } else if ((c & 1) == 0) {
    for (int i = 0; i < rows; i++) _mm_prefetch(p + i * pitch * 2, _MM_HINT_T0);
  }
}

// R rows whose chunk c sits at w + c * stride + i * 16 (packed: stride = 16 * rows in the block;
// plain [n, k] rows: stride = 16, row pitch k -> see gemv_bf16). Accumulators are compile-time
// arrays so they stay in registers.
template <int R>
__attribute__((target("avx512f"))) void chunks_avx512(const float* x, const float*, const uint16_t* w, int64_t stride, int64_t pitch, int64_t chunks, float* out) {
  __m512 acc[R];
  for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t c = 0; c < chunks; c++, w += stride) {
    __m512 xv = _mm512_loadu_ps(x + c * kChunk);
    prefetch(w, stride, pitch, R, c);
    for (int i = 0; i < R; i++) {
      __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * pitch));
      acc[i] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)), xv, acc[i]);
    }
  }
  for (int i = 0; i < R; i++) out[i] = _mm512_reduce_add_ps(acc[i]);
}

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// AVX2 has no cheap 16->32-bit widening of a whole register, so each 256-bit load of 16 bf16
// weights is split in place: the low halves of its 32-bit slots (even elements) shifted up, the
// high halves (odd elements) masked. xs is x pre-split the same way (8 even, then 8 odd per chunk).
template <int R>
__attribute__((target("avx2,fma"))) void chunks_avx2(const float*, const float* xs, const uint16_t* w, int64_t stride, int64_t pitch, int64_t chunks, float* out) {
  __m256 even[R], odd[R];
  for (int i = 0; i < R; i++) even[i] = odd[i] = _mm256_setzero_ps();
  const __m256i hi = _mm256_set1_epi32(int(0xFFFF0000u));
  for (int64_t c = 0; c < chunks; c++, w += stride) {
    __m256 xe = _mm256_loadu_ps(xs + c * kChunk), xo = _mm256_loadu_ps(xs + c * kChunk + 8);
    prefetch(w, stride, pitch, R, c);
    for (int i = 0; i < R; i++) {
      __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * pitch));
      even[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h, 16)), xe, even[i]);
      odd[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(h, hi)), xo, odd[i]);
    }
  }
  for (int i = 0; i < R; i++) out[i] = hsum256(_mm256_add_ps(even[i], odd[i]));
}

template <int R>
void chunks_scalar(const float* x, const float*, const uint16_t* w, int64_t stride, int64_t pitch, int64_t chunks, float* out) {
  for (int i = 0; i < R; i++) {
    float s = 0.f;
    for (int64_t c = 0; c < chunks; c++) s += tail_dot(x + c * kChunk, w + c * stride + i * pitch, kChunk);
    out[i] = s;
  }
}

using ChunkFn = void (*)(const float*, const float*, const uint16_t*, int64_t, int64_t, int64_t, float*);
struct Kernels {
  ChunkFn full, one;  // kRows rows, or one row
  bool split_x;       // wants x pre-split into even/odd halves per chunk
};

Kernels pick(const CpuFeatures& f) {
  if (f.avx512f) return {chunks_avx512<kRows>, chunks_avx512<1>, false};
  if (f.avx2 && f.fma) return {chunks_avx2<kRows>, chunks_avx2<1>, true};
  return {chunks_scalar<kRows>, chunks_scalar<1>, false};
}

std::vector<float> split_even_odd(const float* x, int64_t k) {
  std::vector<float> xs(size_t(k), 0.f);
  for (int64_t j = 0; j + kChunk <= k; j += kChunk)
    for (int q = 0; q < 8; q++) {
      xs[size_t(j + q)] = x[j + 2 * q];
      xs[size_t(j + 8 + q)] = x[j + 2 * q + 1];
    }
  return xs;
}

}  // namespace

std::vector<uint16_t, HostAllocator<uint16_t>> pack_gemv_bf16(const uint16_t* rows, int64_t n, int64_t k) {
  std::vector<uint16_t, HostAllocator<uint16_t>> out(size_t(n * k));
  const int64_t chunks = k / kChunk, tail = k - chunks * kChunk;
  for (int64_t b0 = 0; b0 < n; b0 += kRows) {
    const int64_t r = std::min<int64_t>(kRows, n - b0);
    uint16_t* blk = out.data() + b0 * k;
    for (int64_t i = 0; i < r; i++) {
      const uint16_t* src = rows + (b0 + i) * k;
      for (int64_t c = 0; c < chunks; c++) std::memcpy(blk + (c * r + i) * kChunk, src + c * kChunk, kChunk * 2);
      std::memcpy(blk + r * chunks * kChunk + i * tail, src + chunks * kChunk, size_t(tail) * 2);
    }
  }
  return out;
}

void gemv_bf16_packed(const float* x, const uint16_t* w, const float* b, float* y, int64_t n, int64_t k, const CpuFeatures& f) {
  const Kernels kern = pick(f);
  const std::vector<float> xs = kern.split_x ? split_even_odd(x, k) : std::vector<float>();
  const int64_t chunks = k / kChunk, tail = k - chunks * kChunk;
  const int64_t blocks = (n + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t i0 = blk * kRows, r = std::min<int64_t>(kRows, n - i0);
    const uint16_t* wb = w + i0 * k;
    if (r == kRows) {
      kern.full(x, xs.data(), wb, kRows * kChunk, kChunk, chunks, y + i0);
    } else {
      for (int64_t i = 0; i < r; i++) kern.one(x, xs.data(), wb + i * kChunk, r * kChunk, kChunk, chunks, y + i0 + i);
    }
    for (int64_t i = 0; i < r; i++)
      y[i0 + i] += tail_dot(x + chunks * kChunk, wb + r * chunks * kChunk + i * tail, tail) + (b ? b[i0 + i] : 0.f);
  }
}

void gemv_bf16(const float* x, const uint16_t* w, const float* b, float* y, int64_t n, int64_t k, const CpuFeatures& f) {
  const Kernels kern = pick(f);
  const std::vector<float> xs = kern.split_x ? split_even_odd(x, k) : std::vector<float>();
  const int64_t chunks = k / kChunk;
  const int64_t blocks = (n + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t i0 = blk * kRows, r = std::min<int64_t>(kRows, n - i0);
    if (r == kRows) {
      kern.full(x, xs.data(), w + i0 * k, kChunk, k, chunks, y + i0);
    } else {
      for (int64_t i = 0; i < r; i++) kern.one(x, xs.data(), w + (i0 + i) * k, kChunk, k, chunks, y + i0 + i);
    }
    for (int64_t i = 0; i < r; i++)
      y[i0 + i] += tail_dot(x + chunks * kChunk, w + (i0 + i) * k + chunks * kChunk, k - chunks * kChunk) + (b ? b[i0 + i] : 0.f);
  }
}

// f32 weights at M = 1. Rows form: w is nn.Linear's [n, k]; columns form: w is its transpose
// [k, n] (oneDNN's plain packed layout), read as y += x[j] * w[j, :] so both stream memory once.
LATTE_MULTIVERSION void gemv_f32(const float* x, const float* w, bool transposed, const float* b, float* y, int64_t n, int64_t k) {
  if (!transposed) {
    // four rows per pass: each load of x feeds four weight streams
    const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < blocks; blk++) {
      const int64_t i0 = blk * 4;
      if (i0 + 4 <= n) {
        const float *w0 = w + i0 * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int64_t j = 0; j < k; j++) {
          s0 += w0[j] * x[j];
          s1 += w1[j] * x[j];
          s2 += w2[j] * x[j];
          s3 += w3[j] * x[j];
        }
        const float r[4] = {s0, s1, s2, s3};
        for (int q = 0; q < 4; q++) y[i0 + q] = r[q] + (b ? b[i0 + q] : 0.f);
      } else {
        for (int64_t i = i0; i < n; i++) {
          const float* wi = w + i * k;
          float acc = 0.f;
#pragma omp simd reduction(+ : acc)
          for (int64_t j = 0; j < k; j++) acc += wi[j] * x[j];
          y[i] = acc + (b ? b[i] : 0.f);
        }
      }
    }
    return;
  }
  constexpr int64_t kCols = 256;  // a column block's accumulators stay in registers / L1
  const int64_t blocks = (n + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t c0 = blk * kCols, cn = std::min(kCols, n - c0);
    float acc[kCols];
    for (int64_t c = 0; c < cn; c++) acc[c] = b ? b[c0 + c] : 0.f;
    for (int64_t j = 0; j < k; j++) {
      const float xj = x[j];
      const float* wj = w + j * n + c0;
#pragma omp simd
      for (int64_t c = 0; c < cn; c++) acc[c] += xj * wj[c];
    }
    for (int64_t c = 0; c < cn; c++) y[c0 + c] = acc[c];
  }
}


}  // namespace latte::cpu
