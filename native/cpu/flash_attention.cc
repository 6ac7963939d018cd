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

// O += P V for one key block: `groups` MR-row groups, group i over its own first k[i] keys (rows of
// V), N = d a multiple of 8. Columns outer, so a chunk of V stays in L1 for every group; chunks of
// NV vectors, then the narrower tails.
template <int MR, int NV>
[[gnu::always_inline]] inline void accumulate_pv(int64_t groups, int64_t N, const int64_t* k, const float* P, int64_t ldp, const float* V, int64_t ldv, float* O, int64_t ldo) {
  int64_t c0 = 0;
  for (; c0 + 8 * NV <= N; c0 += 8 * NV)
    for (int64_t i = 0; i < groups; i++)
      if (k[i] > 0) tile<MR, NV, true>(P + i * MR * ldp, ldp, V + c0, ldv, k[i], O + i * MR * ldo + c0, ldo);
  if constexpr (NV > 1) {
    if (c0 < N) accumulate_pv<MR, NV / 2>(groups, N - c0, k, P, ldp, V + c0, ldv, O + c0, ldo);
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
  // Keys each MR-row group sees (its rows' largest visible count): under a causal mask a group's
  // tiles stop at its own diagonal, not the block's (a 48-row block computed its whole square).
  int64_t group_end[kRows / MR], kv_end = 0;
  for (int64_t r0 = 0; r0 < mp; r0 += MR) {
    int64_t e = 0;
    for (int64_t r = r0; r < std::min(r0 + MR, mq); r++) e = std::max(e, visible_keys(a, m, i0 + r));
    group_end[r0 / MR] = e;
    kv_end = std::max(kv_end, e);  // later key blocks are skipped
  }
  const float* ktg = kt + (b * m.G + g) * d * ldk;
  const float* vg = vp + (b * m.G + g) * m.Skv * ldv;
  int64_t keys[kRows / MR];  // keys of the current block each group sees
  for (int64_t j0 = 0; j0 < kv_end; j0 += kKeys) {
    const int64_t n = std::min(kKeys, kv_end - j0);
    int64_t widest = 0;
    for (int64_t i = 0; i < mp / MR; i++) widest = std::max(widest, keys[i] = std::max<int64_t>(0, std::min(n, group_end[i] - j0)));
    // S = Q K^T in whole 8 NV-key tiles (the columns past a group's keys are computed, never read),
    // key chunks outer so a chunk of K^T stays in L1 for every group
    for (int64_t c0 = 0; c0 < widest; c0 += 8 * NV)
      for (int64_t i = 0; i < mp / MR; i++)
        if (c0 < keys[i]) tile<MR, NV, false>(w.q + i * MR * d, d, ktg + j0 + c0, ldk, d, w.s + i * MR * kKeys + c0, kKeys);
    for (int64_t r = 0; r < mq; r++) softmax_row(a, m, w, b, h, i0 + r, r, j0, n);
    for (int64_t r = mq; r < mp; r++)
      for (int64_t j = 0; j < n; j++) w.s[r * kKeys + j] = 0.f;
    accumulate_pv<MR, NV>(mp / MR, d, keys, w.s, kKeys, vg + j0 * ldv, ldv, w.o, d);
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
  // K^T and V per (batch, kv head), in one parallel region (a second one showed at small shapes).
  // V is copied to rows ldv apart: its own rows are G*d apart, a multiple of 4 KiB for 16 heads of 64
  // + 32: a score tile may read up to 31 floats past K^T's last row (columns never read back)
  float* kt = ctx.arena.take_n<float>(size_t(m.B * m.G * m.d * ldk + 32));
  for (int i = 0; i < 32; i++) kt[m.B * m.G * m.d * ldk + i] = 0.f;
  float* vp = ctx.arena.take_n<float>(size_t(m.B * m.G * m.Skv * ldv));
  const float* vs = a.v->f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < m.B; b++)
    for (int64_t g = 0; g < m.G; g++) {
      transpose_keys(a.k->f32(), m, ldk, b, g, kt + (b * m.G + g) * m.d * ldk);
      for (int64_t j = 0; j < m.Skv; j++)
        __builtin_memcpy(vp + ((b * m.G + g) * m.Skv + j) * ldv, vs + ((b * m.cap + j) * m.G + g) * m.d, size_t(m.d) * sizeof(float));
    }
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
