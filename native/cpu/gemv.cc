// y = W x + b for one row x (decode) with bf16 weights W [n, k]. Memory-bound: it streams the
// weights once, widening bf16 to f32 in registers (a shift), accumulating in f32. Compiled for
// AVX-512 and AVX2 with per-function targets; picked at run time from the CPU's features.
#include <immintrin.h>

#include "cpu/cpu_kernels.h"
#include "cpu/vec_math.h"

namespace latte::cpu {
namespace {

constexpr int64_t kRows = 4;  // rows per pass: each x vector load feeds four weight rows

float tail_dot(const float* x, const uint16_t* w, int64_t from, int64_t k) {
  float s = 0.f;
  for (int64_t j = from; j < k; j++) s += x[j] * bf16_to_f32(w[j]);
  return s;
}

__attribute__((target("avx512f"))) void rows_avx512(const float* x, const uint16_t* w, float* out, int64_t r, int64_t k) {
  __m512 acc[kRows];
  for (int i = 0; i < r; i++) acc[i] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    __m512 xv = _mm512_loadu_ps(x + j);
    for (int i = 0; i < r; i++) {
      _mm_prefetch(reinterpret_cast<const char*>(w + i * k + j) + 512, _MM_HINT_T0);
      __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * k + j));
      __m512 wv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      acc[i] = _mm512_fmadd_ps(wv, xv, acc[i]);
    }
  }
  for (int i = 0; i < r; i++) out[i] = _mm512_reduce_add_ps(acc[i]) + tail_dot(x, w + i * k, j, k);
}

__attribute__((target("avx2,fma"))) float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) void rows_avx2(const float* x, const uint16_t* w, float* out, int64_t r, int64_t k) {
  __m256 acc[kRows];
  for (int i = 0; i < r; i++) acc[i] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    __m256 xv = _mm256_loadu_ps(x + j);
    for (int i = 0; i < r; i++) {
      if ((j & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(w + i * k + j) + 512, _MM_HINT_T0);
      __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i * k + j));
      __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      acc[i] = _mm256_fmadd_ps(wv, xv, acc[i]);
    }
  }
  for (int i = 0; i < r; i++) out[i] = hsum256(acc[i]) + tail_dot(x, w + i * k, j, k);
}

void rows_scalar(const float* x, const uint16_t* w, float* out, int64_t r, int64_t k) {
  for (int i = 0; i < r; i++) out[i] = tail_dot(x, w + i * k, 0, k);
}

}  // namespace

void gemv_bf16(const float* x, const uint16_t* w, const float* b, float* y, int64_t n, int64_t k, const CpuFeatures& f) {
  auto rows = f.avx512f ? rows_avx512 : (f.avx2 && f.fma) ? rows_avx2 : rows_scalar;
  int64_t blocks = (n + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t i0 = blk * kRows, r = std::min(kRows, n - i0);
    rows(x, w + i0 * k, y + i0, r, k);
    if (b)
      for (int64_t i = 0; i < r; i++) y[i0 + i] += b[i0 + i];
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
