// 8-bit weights (core/quant.h) on the CPU: the packed layout, y = x W^T + b for a few rows (decode)
// and the dequantisation the many-row path hands to oneDNN (linear.cc).
//
// Decode is bound by weight bytes, so the GEMV reads W once as int8 and does integer dot products,
// as llama.cpp's Q8_0 x Q8_0: each row of x is quantised per block of 32 (scale max|x| / 127), and a
// block's dot is sum(qw * qx) * dw * dx. AVX-512 VNNI's vpdpbusd multiplies unsigned by signed
// bytes, so W is stored biased (qw + 128, unsigned) and the bias term 128 * sum(qx) of each block is
// cancelled by starting the dot from -128 * sum(qx) (one int32 lane per block, precomputed with x).
// AVX2 (no VNNI) unbiases and uses the abs/sign trick with maddubs, as llama.cpp does.
//
// Layout: k is padded to a multiple of 64 (two blocks, one 512-bit register: "a pair") and n to a
// multiple of 4 (kRows) with zeros. Output rows go in groups of four; in a group, each pair's 64
// bytes of the four rows follow each other, so the kernel reads one linear stream (as gemv.cc's bf16
// layout). Within a pair's 64 bytes the two blocks' 4-byte groups alternate (A0-3, B0-3, A4-7, ...):
// 32-bit lane j of a dot then belongs to block A for even j and B for odd j, so one register of
// scales [dA, dB, dA, dB, ...] (a broadcast of the two f16 scales) scales both blocks at once.
// Scales go in their own stream: [group][pair][row][2] f16.
// GCC 12's _mm512_cvtph_ps / _mm512_reduce_add_ps start from _mm512_undefined_*(), which its
// uninitialized-use warnings flag
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/quant.h"
#include "cpu/cpu_kernels.h"

namespace latte::cpu {
namespace {

constexpr int kRows = 4;        // output rows per group: each x load feeds four weight rows
constexpr int64_t kPair = 64;   // bytes (weights) per pair of blocks
constexpr int kPrefetch = 1024;  // bytes ahead of the weight stream (as gemv.cc)

// byte offset of element i (0..63) of a pair inside its interleaved 64 bytes
inline int pair_pos(int i) {
  const int blk = i / kQ8Block, j = i % kQ8Block;
  return 8 * (j / 4) + 4 * blk + j % 4;
}

// One row of x quantised for the kernels: per pair 64 signed bytes (interleaved as W), the 16
// lanes' x scales [dxA, dxB, ...] and the 16 lanes' bias correction (lane 0: -128 * sum(qA),
// lane 1: -128 * sum(qB), the rest 0).
struct QRow {
  int8_t* q;
  float* d;
  int32_t* corr;
};

void quantise_row(const float* x, int64_t k, int64_t pairs, QRow r) {
  float blk[kQ8Block];
  int8_t q[kQ8Block];
  for (int64_t p = 0; p < pairs; p++) {
    std::memset(r.corr + p * 16, 0, 64);
    for (int b = 0; b < 2; b++) {
      const int64_t j0 = (2 * p + b) * kQ8Block, len = std::max<int64_t>(0, std::min<int64_t>(kQ8Block, k - j0));
      float amax = 0.f;
      for (int64_t j = 0; j < len; j++) amax = std::max(amax, std::fabs(blk[j] = x[j0 + j]));
      const float d = amax / 127.f, inv = d > 0.f ? 1.f / d : 0.f;
      int32_t sum = 0;
      for (int j = 0; j < kQ8Block; j++) {
        q[j] = j < len ? int8_t(std::lround(blk[j] * inv)) : 0;
        sum += q[j];
      }
      for (int j = 0; j < kQ8Block; j++) r.q[p * kPair + pair_pos(b * kQ8Block + j)] = q[j];
      for (int l = b; l < 16; l += 2) r.d[p * 16 + l] = d;
      r.corr[p * 16 + b] = -128 * sum;
    }
  }
}

// Four rows' dots over `pairs` pairs: w the group's weight stream, s its scales.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void dots_vnni(const QRow& x, const uint8_t* w, const uint16_t* s, int64_t pairs, float* out) {
  __m512 acc[kRows];
  for (int i = 0; i < kRows; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; p++, w += kRows * kPair, s += 2 * kRows) {
    const __m512i xv = _mm512_loadu_si512(x.q + p * kPair);
    const __m512i cv = _mm512_loadu_si512(x.corr + p * 16);
    const __m512 dx = _mm512_loadu_ps(x.d + p * 16);
    for (int off = 0; off < kRows * kPair; off += 64) _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetch + off, _MM_HINT_T0);
    for (int i = 0; i < kRows; i++) {
      const __m512i dot = _mm512_dpbusd_epi32(cv, _mm512_loadu_si512(w + i * kPair), xv);
      uint32_t s2;
      std::memcpy(&s2, s + 2 * i, 4);
      const __m512 dw = _mm512_cvtph_ps(_mm256_set1_epi32(int(s2)));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, dx), acc[i]);
    }
  }
  for (int i = 0; i < kRows; i++) out[i] = _mm512_reduce_add_ps(acc[i]);
}

__attribute__((target("avx2,fma,f16c"))) void dots_avx2(const QRow& x, const uint8_t* w, const uint16_t* s, int64_t pairs, float* out) {
  __m256 acc[kRows];
  for (int i = 0; i < kRows; i++) acc[i] = _mm256_setzero_ps();
  const __m256i bias = _mm256_set1_epi8(char(0x80)), ones = _mm256_set1_epi16(1);
  for (int64_t p = 0; p < pairs; p++, w += kRows * kPair, s += 2 * kRows) {
    const __m256 dx = _mm256_loadu_ps(x.d + p * 16);  // lanes 8..15 repeat 0..7
    for (int off = 0; off < kRows * kPair; off += 64) _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetch + off, _MM_HINT_T0);
    for (int i = 0; i < kRows; i++) {
      uint32_t s2;
      std::memcpy(&s2, s + 2 * i, 4);
      const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi32(int(s2))), dx);
      for (int h = 0; h < 2; h++) {
        const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i * kPair + h * 32)), bias);
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + p * kPair + h * 32));
        // |w| * (x with w's sign): unsigned x signed bytes, pairs summed to int16 without overflow (|q| <= 127)
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)), scale, acc[i]);
      }
    }
  }
  for (int i = 0; i < kRows; i++) {
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    out[i] = _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)));
  }
}

void dots_scalar(const QRow& x, const uint8_t* w, const uint16_t* s, int64_t pairs, float* out) {
  for (int i = 0; i < kRows; i++) out[i] = 0.f;
  for (int64_t p = 0; p < pairs; p++, w += kRows * kPair, s += 2 * kRows)
    for (int i = 0; i < kRows; i++)
      for (int b = 0; b < 2; b++) {
        int32_t dot = 0;
        for (int j = 0; j < kQ8Block; j++) {
          const int pos = pair_pos(b * kQ8Block + j);
          dot += (int32_t(w[i * kPair + pos]) - 128) * x.q[p * kPair + pos];
        }
        out[i] += float(dot) * f16_to_f32(s[2 * i + b]) * x.d[p * 16 + b];
      }
}

using DotsFn = void (*)(const QRow&, const uint8_t*, const uint16_t*, int64_t, float*);
DotsFn pick(const CpuFeatures& f) {
  if (f.avx512_vnni) return dots_vnni;
  if (f.avx2 && f.fma && f.f16c) return dots_avx2;
  return dots_scalar;
}

}  // namespace

Q8Weights pack_q8(const float* w, int64_t n, int64_t k) {
  Q8Weights p;
  p.n = n;
  p.k = k;
  p.pairs = (k + kPair - 1) / kPair;
  const int64_t groups = (n + kRows - 1) / kRows;
  p.q.assign(size_t(groups * kRows * p.pairs * kPair), 128);  // biased zero
  p.d.assign(size_t(groups * kRows * p.pairs * 2), 0);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; r++) {
    const int64_t g = r / kRows, i = r % kRows;
    int8_t q[kQ8Block];
    for (int64_t blk = 0; blk < p.pairs * 2; blk++) {
      const int64_t j0 = blk * kQ8Block, pr = blk / 2, b = blk % 2;
      const int len = int(std::max<int64_t>(0, std::min<int64_t>(kQ8Block, k - j0)));
      const uint16_t d = q8_quantise_block(w + r * k + std::min(j0, k), len, q);
      const int64_t at = (g * p.pairs + pr) * kRows + i;
      p.d[size_t(at * 2 + b)] = d;
      for (int j = 0; j < kQ8Block; j++) p.q[size_t(at * kPair + pair_pos(int(b) * kQ8Block + j))] = uint8_t(q[j] + 128);
    }
  }
  return p;
}

void dequantise_q8(const Q8Weights& p, float* out) {
  // element e of a pair sits at byte pair_pos(e); the pair's scales are [dA, dB]
  int pos[kPair];
  for (int e = 0; e < kPair; e++) pos[e] = pair_pos(e);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p.n; r++) {
    const int64_t g = r / kRows, i = r % kRows;
    for (int64_t pr = 0; pr < p.pairs; pr++) {
      const int64_t at = (g * p.pairs + pr) * kRows + i, c0 = pr * kPair, len = std::min<int64_t>(kPair, p.k - c0);
      const uint8_t* q = p.q.data() + at * kPair;
      const float d[2] = {f16_to_f32(p.d[size_t(at * 2)]), f16_to_f32(p.d[size_t(at * 2 + 1)])};
      float v[kPair];
      for (int e = 0; e < kPair; e++) v[e] = float(int(q[pos[e]]) - 128) * d[e / kQ8Block];
      std::memcpy(out + r * p.k + c0, v, size_t(len) * 4);
    }
  }
}

// One row's block (32 k) into a bf16 tile: lane j2 of t32 + j2 * 64 gets (k = 2 j2, 2 j2 + 1). The block's
// 4-byte groups are the even (block A) or odd (block B) 32-bit lanes of the pair's 64 bytes: one
// permute puts them in order; cvtne2ps rounds to bf16 as f32_to_bf16 does (the values are finite).
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void block_to_bf16_avx512(const uint8_t* pair, int blk, float d, uint32_t* t32) {
  const __m512i lanes = _mm512_loadu_si512(pair);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i ordered = _mm512_permutexvar_epi32(even, lanes);  // block A's 32 bytes, then block B's
  const __m256i bytes = blk == 0 ? _mm512_castsi512_si256(ordered) : _mm512_extracti64x4_epi64(ordered, 1);
  const __m512i bias = _mm512_set1_epi32(128);
  const __m512 scale = _mm512_set1_ps(d);
  const __m512 lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(bytes)), bias)), scale);
  const __m512 hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(bytes, 1)), bias)), scale);
  const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
  const __m512i stride = _mm512_setr_epi32(0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960);
  _mm512_i32scatter_epi32(t32, stride, pairs, 4);
}

bool dequantise_q8_blocked(const Q8Weights& p, void* out, bool bf16, const int64_t* strides, int64_t kpad, int64_t npad, const CpuFeatures& f) {
  // oneDNN's brgemm weights [k, n] in tiles of kt k x 64 n at (k / kt) * strides[0] + (n / 64) * strides[1]:
  // f32 BA16a64b (kt = 16, n fastest), bf16 BA16a64b2a (kt = 32, pairs of k innermost)
  const int kt = bf16 ? 32 : 16;
  if (kpad % kt || npad % 64) return false;
  // bf16 tiles hold one whole block per row (kt = 32): whole rows go through the vector path
  const bool vec = bf16 && f.avx512_bf16 && f.avx512f;
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t nb = 0; nb < npad / 64; nb++)
    for (int64_t kb = 0; kb < kpad / kt; kb++) {
      const int64_t tile = kb * strides[0] + nb * strides[1];
      for (int64_t nn = 0; nn < 64; nn++) {
        const int64_t r = nb * 64 + nn, c0 = kb * kt;
        if (vec && r < p.n && c0 + kt <= p.k) {
          const int64_t at = ((r / kRows) * p.pairs + c0 / kPair) * kRows + r % kRows;
          const int blk = int(c0 % kPair) / kQ8Block;
          block_to_bf16_avx512(p.q.data() + at * kPair, blk, f16_to_f32(p.d[size_t(at * 2 + blk)]), reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(out) + tile) + nn);
          continue;
        }
        float v[32] = {};
        if (r < p.n && c0 < p.k) {
          // kt consecutive k of one block: 4-byte groups, 8 bytes apart in the pair's interleave
          const int64_t at = ((r / kRows) * p.pairs + c0 / kPair) * kRows + r % kRows;
          const int e0 = int(c0 % kPair);
          const uint8_t* q = p.q.data() + at * kPair + pair_pos(e0);
          const float d = f16_to_f32(p.d[size_t(at * 2 + e0 / kQ8Block)]);
          for (int j = 0; j < kt; j++) v[j] = c0 + j < p.k ? float(int(q[8 * (j / 4) + j % 4]) - 128) * d : 0.f;
        }
        if (bf16) {
          uint16_t* t = static_cast<uint16_t*>(out) + tile;
          for (int j = 0; j < kt; j++) t[(j / 2) * 128 + nn * 2 + j % 2] = f32_to_bf16(v[j]);
        } else {
          float* t = static_cast<float*>(out) + tile;
          for (int j = 0; j < kt; j++) t[j * 64 + nn] = v[j];
        }
      }
    }
  return true;
}

void gemv_q8(const float* x, int64_t m, const Q8Weights& w, const float* b, float* y, const CpuFeatures& f, Arena& arena) {
  const DotsFn dots = pick(f);
  const int64_t pairs = w.pairs, n = w.n, groups = (n + kRows - 1) / kRows;
  std::vector<QRow> rows(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; r++)
    rows[size_t(r)] = {arena.take_n<int8_t>(size_t(pairs * kPair)), arena.take_n<float>(size_t(pairs * 16)), arena.take_n<int32_t>(size_t(pairs * 16))};
#pragma omp parallel for schedule(static) if (m > 1)
  for (int64_t r = 0; r < m; r++) quantise_row(x + r * w.k, w.k, pairs, rows[size_t(r)]);
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; g++) {
    const uint8_t* wg = w.q.data() + g * kRows * pairs * kPair;
    const uint16_t* sg = w.d.data() + g * kRows * pairs * 2;
    const int64_t i0 = g * kRows, valid = std::min<int64_t>(kRows, n - i0);
    float out[kRows];
    // rows of x inside: the group's weights (4 * k bytes) stay in cache across them
    for (int64_t r = 0; r < m; r++) {
      dots(rows[size_t(r)], wg, sg, pairs, out);
      for (int64_t i = 0; i < valid; i++) y[r * n + i0 + i] = out[i] + (b ? b[i0 + i] : 0.f);
    }
  }
}

}  // namespace latte::cpu
