// The stream's overheads from C++ (no Node): the part of benchmarks/stream.ts that is not N-API or
// TypeScript. Same workload: 10,000 "add" ops on f32[64] enqueued back to back, then one fence
// (median of rounds), and the fence round trip on an idle engine (median of 1000).
// Output: a human table, then one "RESULT " line per thread count.
//
// Usage: bench_stream [--threads 1,2] [--ops N] [--rounds R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "latte/engine.h"
#include "latte/sync.h"

namespace {

using clk = std::chrono::steady_clock;
double now_us() { return std::chrono::duration<double, std::micro>(clk::now().time_since_epoch()).count(); }

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  int ops = 10000, rounds = 7, fences = 1000;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--ops" && i + 1 < argc) ops = std::max(1, std::atoi(argv[++i]));
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc) {
      threads.clear();
      std::string s = argv[++i];
      for (size_t p = 0; p <= s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        threads.push_back(std::atoi(s.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else {
      std::fprintf(stderr, "usage: bench_stream [--threads 1,2] [--ops N] [--rounds R]\n");
      return 2;
    }
  }
  std::printf("bench_stream (C++ API): %d add ops on f32[64] then one fence, median of %d rounds; fence round trip, median of %d\n",
              ops, rounds, fences);
  std::printf("%-4s | %14s | %18s | %12s | %10s\n", "thr", "enqueue us/op", "enqueue+run us/op", "fence us", "fence p90");
  for (int t : threads) {
    latte::EngineOptions eo;
    eo.backend = "cpu";
    eo.threads = t;
    latte::Engine e(eo);
    std::vector<float> ones(64, 1.f), twos(64, 2.f);
    latte::Tensor a = e.upload(latte::DType::F32, latte::Shape{64}, ones.data(), 256);
    latte::Tensor b = e.upload(latte::DType::F32, latte::Shape{64}, twos.data(), 256);
    latte::sync::fence(e);
    const latte::OpAttrs none;
    std::vector<latte::Tensor> outs(static_cast<size_t>(ops));
    std::vector<double> enq, tot;
    for (int r = 0; r <= rounds; r++) {
      double t0 = now_us();
      for (int i = 0; i < ops; i++) outs[size_t(i)] = e.enqueue(latte::Op::Add, {&a, &b}, none)[0];
      double t1 = now_us();
      latte::sync::fence(e);
      double t2 = now_us();
      for (auto& o : outs) o = latte::Tensor{};
      if (r == 0) continue;
      enq.push_back((t1 - t0) / ops);
      tot.push_back((t2 - t0) / ops);
    }
    std::vector<double> fs;
    for (int i = 0; i < 50; i++) latte::sync::fence(e);
    for (int i = 0; i < fences; i++) {
      double t0 = now_us();
      latte::sync::fence(e);
      fs.push_back(now_us() - t0);
    }
    double em = quantile(enq, 0.5), tm = quantile(tot, 0.5), fm = quantile(fs, 0.5), f9 = quantile(fs, 0.9);
    std::printf("%-4d | %14.2f | %18.2f | %12.1f | %10.1f\n", t, em, tm, fm, f9);
    std::printf("RESULT bench=stream_native threads=%d enqueue_us=%.3f total_us=%.3f fence_us=%.2f fence_p90_us=%.2f\n", t,
                em, tm, fm, f9);
    std::fflush(stdout);
    latte::sync::dispose(e);
  }
  return 0;
}
