// Choosing the next token from one row of logits, exactly as the reference defines it
// (docs/reference.md#token-sampling): greedy at temperature 0 (lowest id on ties); otherwise
// temperature, top-k (ties at the k-th value kept), top-p over the descending probabilities (ties:
// lower id first), then an inverse-CDF draw in id order with the seeded uniform(seed, step).
// Host code over a row of floats: the CPU backend calls it per row; a GPU backend may too.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/rng.h"

namespace latte::sampling {

struct Params {
  float temperature = 0.f;  // 0 = greedy
  int top_k = 0;            // 0 = off
  float top_p = 1.f;        // 1 = off
  uint64_t seed = 0;
  uint64_t step = 0;        // the decode step: uniform(seed, step) drives the draw
};

// Why settings are refused, or nullptr: the sample op and a sequence's settings refuse the same values.
inline const char* invalid(float temperature, int top_k, float top_p) {
  if (!(temperature >= 0.f) || !std::isfinite(temperature)) return "temperature must be finite and >= 0";
  if (top_k < 0) return "top_k must be >= 0";
  if (!(top_p > 0.f && top_p <= 1.f)) return "top_p must be in (0, 1]";
  return nullptr;
}

// A step counted on the engine (i32 [1]): counters start at 0 and only advance, so the value is
// never negative; the cast keeps a corrupt one a valid (if arbitrary) step rather than undefined.
inline uint64_t step_of(int32_t at) { return uint64_t(uint32_t(at)); }

// softmax over the kept entries (others 0), in f32 like the reference
inline void masked_softmax(const std::vector<float>& z, const std::vector<char>& keep, std::vector<float>& p) {
  float mx = -INFINITY;
  for (size_t i = 0; i < z.size(); i++)
    if (keep[i]) mx = std::max(mx, z[i]);
  float sum = 0.f;
  for (size_t i = 0; i < z.size(); i++) sum += p[i] = keep[i] ? std::exp(z[i] - mx) : 0.f;
  for (auto& v : p) v /= sum;
}

inline int32_t sample_row(const float* logits, int64_t V, const Params& prm, std::vector<float>& z, std::vector<float>& p, std::vector<char>& keep) {
  if (!(prm.temperature > 0.f)) return int32_t(std::max_element(logits, logits + V) - logits);  // first max
  z.assign(logits, logits + V);
  for (auto& v : z) v /= prm.temperature;
  keep.assign(size_t(V), 1);
  p.assign(size_t(V), 0.f);
  if (prm.top_k > 0 && prm.top_k < V) {
    std::vector<float> sorted(z);
    std::nth_element(sorted.begin(), sorted.begin() + (prm.top_k - 1), sorted.end(), std::greater<float>());
    const float kth = sorted[size_t(prm.top_k - 1)];
    for (int64_t i = 0; i < V; i++) keep[size_t(i)] = z[size_t(i)] >= kth;
  }
  if (prm.top_p < 1.f) {
    masked_softmax(z, keep, p);
    std::vector<int32_t> ids(static_cast<size_t>(V));
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)]; });
    std::vector<char> kept(static_cast<size_t>(V), 0);
    double acc = 0.0;
    for (int32_t i : ids) {
      kept[size_t(i)] = 1;
      acc += double(p[size_t(i)]);
      if (acc >= double(prm.top_p)) break;
    }
    for (int64_t i = 0; i < V; i++) keep[size_t(i)] = keep[size_t(i)] && kept[size_t(i)];
  }
  masked_softmax(z, keep, p);
  double total = 0.0;
  for (float v : p) total += double(v);
  const double u = rng::uniform(rng::key(prm.seed), prm.step) * total;
  double cdf = 0.0;
  int32_t last = 0;
  for (int64_t i = 0; i < V; i++) {
    if (p[size_t(i)] <= 0.f) continue;
    cdf += double(p[size_t(i)]);
    last = int32_t(i);
    if (cdf > u) return int32_t(i);
  }
  return last;  // only when rounding leaves u at the very top
}

}  // namespace latte::sampling
