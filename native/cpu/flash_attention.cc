// Tiled attention for long query runs (vision blocks, prefill, the generator's image rows): per
// (batch, head, block of query rows) the keys are visited a block at a time with an online softmax
// in f32 (running max and sum, the output rescaled when the max grows), so no full score row is kept
// and each key/value block is reused by every row of the query block while it is in cache. Same
// semantics as the row path in attention.cc (docs/model.md section 3): masks, GQA, `past`,
// prompt_len padding, the TCRA residual and the post-residual image-column logits.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/attention_common.h"
#include "cpu/vec_math.h"

namespace latte::cpu {
namespace {

// GCC vector type: 8 floats, compiled to the clone's ISA (ymm under AVX2 and AVX-512).
typedef float v8f __attribute__((vector_size(32)));

constexpr int64_t kRows = 48;   // query rows per block: a multiple of each tile's MR
constexpr int64_t kKeys = 128;  // keys per block: a multiple of 16 (whole tiles of K^T's padding)

// C[MR][8 NV] (=|+=) A[MR][K] B[K][8 NV]: A's entries broadcast (row stride lda), B's rows 8 NV
// contiguous floats (stride ldb). The MR x NV accumulators stay in registers across K; the one
// multiply-add shape serves both S = Q K^T (K = d, B = K^T) and O += P V (K = keys, B = V).
template <int MR, int NV, bool Accumulate>
[[gnu::always_inline]] inline void tile(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t K, float* C, int64_t ldc) {
  v8f acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
    for (int c = 0; c < NV; c++) {
      if (Accumulate) __builtin_memcpy(&acc[r][c], C + r * ldc + 8 * c, sizeof(v8f));
      else acc[r][c] = v8f{};
    }
  for (int64_t k = 0; k < K; k++) {
    v8f b[NV];
#pragma GCC unroll 8
    for (int c = 0; c < NV; c++) __builtin_memcpy(&b[c], B + k * ldb + 8 * c, sizeof(v8f));
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const float x = A[r * lda + k];
      const v8f xv = {x, x, x, x, x, x, x, x};
#pragma GCC unroll 8
      for (int c = 0; c < NV; c++) acc[r][c] += xv * b[c];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
    for (int c = 0; c < NV; c++) __builtin_memcpy(C + r * ldc + 8 * c, &acc[r][c], sizeof(v8f));
}

// C[M][N] (=|+=) A B over whole MR-row groups (M a multiple of MR) and N a multiple of 8: columns in
// chunks of NV vectors, then the narrower tail chunks.
template <int MR, int NV, bool Accumulate>
[[gnu::always_inline]] inline void block_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc) {
  int64_t c0 = 0;
  for (; c0 + 8 * NV <= N; c0 += 8 * NV)
    for (int64_t r = 0; r < M; r += MR) tile<MR, NV, Accumulate>(A + r * lda, lda, B + c0, ldb, K, C + r * ldc + c0, ldc);
  if constexpr (NV > 1) {
    if (c0 < N) block_gemm<MR, NV / 2, Accumulate>(M, N - c0, K, A, lda, B + c0, ldb, C + c0, ldc);
  }
}

// max of s[0, n) (-inf when n = 0). GCC does not vectorise an `omp simd` max reduction over floats
// (it keeps std::max's NaN order): this loop was a tenth of the kernel's time.
[[gnu::always_inline]] inline float row_max(const float* s, int64_t n) {
  const float ninf = -INFINITY;
  v8f mv = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f x;
    __builtin_memcpy(&x, s + j, sizeof x);
    mv = x > mv ? x : mv;
  }
  float mx = ninf;
  for (int c = 0; c < 8; c++) mx = mv[c] > mx ? mv[c] : mx;
  for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  return mx;
}

// A row stride (floats) for a panel of `width`-float rows that is an odd number of cache lines: a
// tile walks d or 128 such rows, and a stride of an even number of lines (4 KiB for 1024 keys,
// 512 B for d = 128) maps them onto a few L1 sets, which then evict each other.
inline int64_t odd_lines(int64_t width) {
  const int64_t w = (width + 15) & ~int64_t(15);
  return (w / 16) % 2 ? w : w + 16;
}

// V as [B*G][Skv][ldv] (ldv = odd_lines(d)): V's own rows are G*d apart, a multiple of 4 KiB for 16
// heads of 64.
float* pack_values(Arena& arena, const float* vs, const AttentionDims& m, int64_t ldv) {
  float* vp = arena.take_n<float>(size_t(m.B * m.G * m.Skv * ldv));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < m.B; b++)
    for (int64_t g = 0; g < m.G; g++)
      for (int64_t j = 0; j < m.Skv; j++)
        __builtin_memcpy(vp + ((b * m.G + g) * m.Skv + j) * ldv, vs + ((b * m.cap + j) * m.G + g) * m.d, size_t(m.d) * sizeof(float));
  return vp;
}

// Per-thread state of one query block.
struct Scratch {
  float* q;  // [kRows][d]: the block's query rows, zero past the last one
  float* s;  // [kRows][kKeys]: scores, then probabilities, of one key block
  float* o;  // [kRows][d]: unnormalised output
  float* m;  // [kRows]: running max
  float* l;  // [kRows]: running sum of exp(s - m)
};

// Scaled scores of keys [j0, j0 + n) for the block's row r -> probabilities against the running max, with
// the mask, prompt padding, residual and logits of docs/model.md section 3; rescales the row's
// output when the max grows. Entries past the row's visible keys come out 0.
[[gnu::always_inline]] inline void softmax_row(const AttentionArgs& a, const AttentionDims& m, Scratch& w, int64_t b, int64_t h, int64_t i, int64_t r, int64_t j0,
                                               int64_t n) {
  float* s = w.s + r * kKeys;
  const int64_t nr = std::max<int64_t>(0, std::min(n, visible_keys(a, m, i) - j0));  // columns this row sees
  const int64_t p0 = prompt_end(a.prompt_len ? a.prompt_len->ptr<int32_t>() : nullptr, m, b);
  for (int64_t j = std::max(p0, j0); j < std::min(m.c0, j0 + nr); j++) s[j - j0] = -INFINITY;
  const int64_t ic = std::max(m.c0, j0);  // first image column in the block
  if (a.residual && ic < j0 + nr) {
    const float gh = a.gate->f32()[b * m.H + h];
    const float* ri = a.residual->f32() + ((b * m.H + h) * m.Sq + i) * m.Ni;
#pragma omp simd
    for (int64_t j = ic; j < j0 + nr; j++) s[j - j0] += gh * ri[j - m.c0];
  }
  if (a.logits) {
    float* li = a.logits->f32() + ((b * m.H + h) * m.Sq + i) * m.Ni;
    for (int64_t j = ic; j < j0 + n; j++) li[j - m.c0] = j < j0 + nr ? s[j - j0] : -INFINITY;
  }
  const float mx = row_max(s, nr);
  const float mold = w.m[r], mnew = std::max(mold, mx);
  float sum = 0.f;
  if (mnew == -INFINITY) {  // nothing visible yet: no probabilities (and no inf - inf)
    for (int64_t j = 0; j < n; j++) s[j] = 0.f;
    return;
  }
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < nr; j++) {
    const float e = vexp(s[j] - mnew);
    s[j] = e;
    sum += e;
  }
  for (int64_t j = nr; j < n; j++) s[j] = 0.f;
  if (mnew > mold) {
    const float alpha = vexp(mold - mnew);  // 0 on the first visible block (mold = -inf)
    float* o = w.o + r * m.d;
#pragma omp simd
    for (int64_t e = 0; e < m.d; e++) o[e] *= alpha;
    w.l[r] *= alpha;
  }
  w.l[r] += sum;
  w.m[r] = mnew;
}

// One (batch, head, query block): rows [i0, i0 + mq). MR x NV is the register tile.
template <int MR, int NV>
[[gnu::always_inline]] inline void query_block(const AttentionArgs& a, const AttentionDims& m, const float* kt, int64_t ldk, const float* vp, int64_t ldv, Scratch& w, int64_t b,
                                               int64_t h, int64_t i0, int64_t mq) {
  const int64_t d = m.d, g = h / m.rep;
  const int64_t mp = (mq + MR - 1) / MR * MR;  // rows padded to whole tiles (zero queries, ignored)
  const float* qs = a.q->f32();
  for (int64_t r = 0; r < mp; r++) {  // scaled here, so the scores come out of the tiles final
    float* qr = w.q + r * d;
    const float* src = qs + ((b * m.Sq + i0 + r) * m.H + h) * d;
    const float sc = r < mq ? a.scale : 0.f;
    if (r >= mq) src = qs;  // a row that exists, times 0
#pragma omp simd
    for (int64_t e = 0; e < d; e++) qr[e] = src[e] * sc;
    for (int64_t e = 0; e < d; e++) w.o[r * d + e] = 0.f;
    w.m[r] = -INFINITY;
    w.l[r] = 0.f;
  }
  int64_t kv_end = 0;  // keys any row of the block sees: later key blocks are skipped
  for (int64_t r = 0; r < mq; r++) kv_end = std::max(kv_end, visible_keys(a, m, i0 + r));
  const float* ktg = kt + (b * m.G + g) * d * ldk;
  const float* vg = vp + (b * m.G + g) * m.Skv * ldv;
  for (int64_t j0 = 0; j0 < kv_end; j0 += kKeys) {
    const int64_t n = std::min(kKeys, kv_end - j0), n16 = (n + 15) & ~int64_t(15);
    block_gemm<MR, NV, false>(mp, n16, d, w.q, d, ktg + j0, ldk, w.s, kKeys);
    for (int64_t r = 0; r < mq; r++) softmax_row(a, m, w, b, h, i0 + r, r, j0, n);
    for (int64_t r = mq; r < mp; r++)
      for (int64_t j = 0; j < n; j++) w.s[r * kKeys + j] = 0.f;
    block_gemm<MR, NV, true>(mp, d, n, w.s, kKeys, vg + j0 * ldv, ldv, w.o, d);
  }
  float* out = a.out->f32();
  for (int64_t r = 0; r < mq; r++) {
    const float inv = 1.f / w.l[r];
    float* dst = out + ((b * m.Sq + i0 + r) * m.H + h) * d;
#pragma omp simd
    for (int64_t e = 0; e < d; e++) dst[e] = w.o[r * d + e] * inv;
    if (a.logits) {  // image columns in skipped key blocks
      float* li = a.logits->f32() + ((b * m.H + h) * m.Sq + i0 + r) * m.Ni;
      for (int64_t j = std::max(m.c0, kv_end); j < m.Skv; j++) li[j - m.c0] = -INFINITY;
    }
  }
}

}  // namespace

LATTE_MULTIVERSION void flash_attention(Context& ctx, const AttentionArgs& a, const AttentionDims& m) {
  const int64_t ldk = odd_lines(m.Skv), ldv = odd_lines(m.d);
  const float* kt = transpose_keys(ctx.arena, a.k->f32(), m, ldk);
  const float* vp = pack_values(ctx.arena, a.v->f32(), m, ldv);
  const int nthreads = omp_get_max_threads();
  const size_t per = size_t(kRows * m.d * 2 + kRows * kKeys + 2 * kRows + 64);  // floats, + alignment slack
  float* base = ctx.arena.take_n<float>(size_t(nthreads) * per);
  const int64_t nqb = (m.Sq + kRows - 1) / kRows;
  // 6 x 4 vectors (24 accumulators) needs AVX-512's 32 registers; 6 x 2 fits AVX2's 16
  const bool wide = ctx.features.avx512f;
#pragma omp parallel for collapse(3) schedule(dynamic)
  for (int64_t b = 0; b < m.B; b++)
    for (int64_t h = 0; h < m.H; h++)
      for (int64_t qb = 0; qb < nqb; qb++) {
        float* p = base + size_t(omp_get_thread_num()) * per;
        Scratch w{p, p + kRows * m.d, p + kRows * m.d + kRows * kKeys, p + 2 * kRows * m.d + kRows * kKeys, nullptr};
        w.l = w.m + kRows;
        const int64_t i0 = qb * kRows, mq = std::min(kRows, m.Sq - i0);
        if (wide) query_block<6, 4>(a, m, kt, ldk, vp, ldv, w, b, h, i0, mq);
        else query_block<6, 2>(a, m, kt, ldk, vp, ldv, w, b, h, i0, mq);
      }
}

}  // namespace latte::cpu
