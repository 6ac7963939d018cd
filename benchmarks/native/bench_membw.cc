// DRAM read roofline: the bandwidth of streaming-reading a buffer far larger than the caches with a
// vectorised f32 sum. The understanding path's decode step reads every weight once per token, so
// this is the ceiling a memory-bound decode can reach on this machine.
//
// Method: a --mib MiB float buffer (default 1024), first touched by the threads that later read it;
// per thread count, one warm-up pass, then --reps timed passes (default 7, at least 5). Each pass is one
// OpenMP parallel region in which every thread sums its contiguous share (AVX2 with 8 independent
// accumulators when the CPU has it, otherwise a plain `omp simd` loop). GB/s = bytes read / 1e9 / s.
// Output: one JSON line per thread count on stdout, e.g.
//   {"bench":"membw","threads":1,"mib":1024,"reps":7,"isa":"avx2","gbps_median":..,"gbps_max":..}
// (a checksum goes to stderr so the sums cannot be optimised away).
//
// Usage: bench_membw [--threads 1,2] [--mib M] [--reps R]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <immintrin.h>

namespace {

using clk = std::chrono::steady_clock;

__attribute__((target("avx2,fma"))) float sum_avx2(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  __m256 a4 = _mm256_setzero_ps(), a5 = _mm256_setzero_ps(), a6 = _mm256_setzero_ps(), a7 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {  // 256 bytes = 4 cache lines per iteration
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    a4 = _mm256_add_ps(a4, _mm256_load_ps(p + i + 32));
    a5 = _mm256_add_ps(a5, _mm256_load_ps(p + i + 40));
    a6 = _mm256_add_ps(a6, _mm256_load_ps(p + i + 48));
    a7 = _mm256_add_ps(a7, _mm256_load_ps(p + i + 56));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float r = 0.f;
  for (float v : lanes) r += v;
  for (; i < n; i++) r += p[i];
  return r;
}

float sum_plain(const float* p, size_t n) {
  float r = 0.f;
#pragma omp simd reduction(+ : r)
  for (size_t i = 0; i < n; i++) r += p[i];
  return r;
}

/** Thread t's share [begin, end) of n floats, split on 64-float (256-byte) boundaries. */
void share(size_t n, int t, int nt, size_t& begin, size_t& end) {
  const size_t blocks = n / 64;
  begin = blocks * size_t(t) / size_t(nt) * 64;
  end = t == nt - 1 ? n : blocks * size_t(t + 1) / size_t(nt) * 64;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  for (size_t p = 0; p <= s.size();) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    const int v = std::atoi(s.substr(p, q - p).c_str());
    if (v > 0) out.push_back(v);
    p = q + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  long mib = 1024;
  int reps = 7;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = parse_list(argv[++i]);
    else if (a == "--mib" && i + 1 < argc) mib = std::max(1L, std::atol(argv[++i]));
    else if (a == "--reps" && i + 1 < argc) reps = std::max(5, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: bench_membw [--threads 1,2] [--mib M] [--reps R (>= 5)]\n");
      return 2;
    }
  }
  if (threads.empty()) {
    std::fprintf(stderr, "bench_membw: --threads needs positive counts\n");
    return 2;
  }
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const size_t bytes = size_t(mib) << 20;
  const size_t n = bytes / sizeof(float);
  float* buf = static_cast<float*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096));
  if (!buf) {
    std::fprintf(stderr, "bench_membw: cannot allocate %ld MiB\n", mib);
    return 1;
  }
  const int max_t = *std::max_element(threads.begin(), threads.end());
  // first touch by the readers (matters on NUMA machines; harmless elsewhere)
#pragma omp parallel num_threads(max_t)
  {
    size_t b, e;
    share(n, omp_get_thread_num(), omp_get_num_threads(), b, e);
    for (size_t i = b; i < e; i++) buf[i] = float(i & 1023) * (1.f / 1024.f);
  }

  double checksum = 0;
  for (int nt : threads) {
    std::vector<float> partial(size_t(nt), 0.f);
    auto pass = [&]() -> double {
      const auto t0 = clk::now();
#pragma omp parallel num_threads(nt)
      {
        const int t = omp_get_thread_num();
        size_t b, e;
        share(n, t, omp_get_num_threads(), b, e);
        partial[size_t(t)] = avx2 ? sum_avx2(buf + b, e - b) : sum_plain(buf + b, e - b);
      }
      const double s = std::chrono::duration<double>(clk::now() - t0).count();
      for (float v : partial) checksum += v;
      return double(bytes) / 1e9 / s;
    };
    pass();  // warm-up: wakes the threads, maps the TLB
    std::vector<double> gbps;
    for (int r = 0; r < reps; r++) gbps.push_back(pass());
    std::printf("{\"bench\":\"membw\",\"threads\":%d,\"mib\":%ld,\"reps\":%d,\"isa\":\"%s\",\"gbps_median\":%.3f,\"gbps_max\":%.3f}\n",
                nt, mib, reps, avx2 ? "avx2" : "scalar-simd", median(gbps), *std::max_element(gbps.begin(), gbps.end()));
    std::fflush(stdout);
  }
  std::fprintf(stderr, "bench_membw: checksum %.6g\n", checksum);
  std::free(buf);
  return 0;
}
