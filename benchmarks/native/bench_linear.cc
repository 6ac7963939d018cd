// Our engine's linear op vs raw oneDNN on the generator's shapes (fp32).
//
//   engine: latte::Engine (public C++ API): upload x and W, enqueue "pack_linear" once, then per call
//           enqueue "linear" with the packed weight and wait on a fence (std::promise). Everything the
//           op layer adds is in this figure: enqueue, the stream's hand-off, output allocation,
//           primitive lookup, the fence round trip.
//   raw:    oneDNN matmul primitive built for the exact M, weights reordered once into the layout
//           oneDNN picks (format_tag::any), executed directly on this thread.
//
// Shapes: M in {64, 128} x (K, N) in {(1536,1536), (1536,8960), (8960,1536)}; 1 and 2 threads.
// Each (shape, threads) case runs rounds of calls alternating one by one between the two sides; the
// ratio is the median of the per-round ratios (this VM is noisy: figures are ratios from one run,
// never absolute targets).
// Output: a human table, then one machine-readable line per case starting with "RESULT ".
//
// Usage: bench_linear [--rounds N] [--min-ms T] [--threads 1,2] [--quick]
#include <dnnl.hpp>
#include <omp.h>
#include <sched.h>
#include <pmmintrin.h>
#include <xmmintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <vector>

#include "latte/engine.h"
#include "latte/sync.h"

namespace {

using clk = std::chrono::steady_clock;
using dnnl::memory;

double now_ms() { return std::chrono::duration<double, std::milli>(clk::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  return buf;
}

// Raw oneDNN, the reference: primitive for this exact M, weights in oneDNN's preferred layout.
struct RawMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  memory src, wmem, dst;
  std::string impl;

  RawMatmul(const float* x, const float* w, float* y, int64_t m, int64_t k, int64_t n) {
    using tag = memory::format_tag;
    using dt = memory::data_type;
    memory::desc sd({m, k}, dt::f32, tag::ab), dd({m, n}, dt::f32, tag::ab);
    memory::desc wany({k, n}, dt::f32, tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(sd, wany, dd), eng);
    impl = pd.impl_info_str();
    prim = dnnl::matmul(pd);
    // W is nn.Linear's [n, k]: format 'ba' is its [k, n] transpose without a copy
    memory wplain(memory::desc({k, n}, dt::f32, tag::ba), eng, const_cast<float*>(w));
    wmem = memory(pd.weights_desc(), eng);
    dnnl::reorder(wplain, wmem).execute(strm, wplain, wmem);
    strm.wait();
    src = memory(sd, eng, const_cast<float*>(x));
    dst = memory(dd, eng, y);
  }
  void run() {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_DST, dst}});
    strm.wait();
  }
};

struct Case {
  int64_t m, k, n;
};

struct Opts {
  int rounds = 9;
  double min_ms = 150;  // per side per round
  std::vector<int> threads = {1, 2};
};

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) o.rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--min-ms" && i + 1 < argc) o.min_ms = std::atof(argv[++i]);
    else if (a == "--quick") o.rounds = 5, o.min_ms = 80;
    else if (a == "--threads" && i + 1 < argc) {
      o.threads.clear();
      std::string s = argv[++i];
      for (size_t p = 0; p <= s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        o.threads.push_back(std::atoi(s.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else {
      std::fprintf(stderr, "usage: bench_linear [--rounds N] [--min-ms T] [--threads 1,2] [--quick]\n");
      return 2;
    }
  }
  // the same denormal policy as the engine's threads (inputs here never go subnormal anyway)
  _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
  _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);

  latte::BackendInfo info = latte::backend_info();
  const latte::CpuFeatures& f = info.cpu;
  const dnnl_version_t* v = dnnl_version();
  std::printf("bench_linear: latte engine linear vs raw oneDNN matmul (fp32, C = x W^T)\n");
  std::printf("date:     %s\n", today().c_str());
  std::printf("cpu:      %s, %d cores\n", cpu_model().c_str(), info.cores);
  std::printf("features: avx2=%d fma=%d avx512f=%d avx512_bf16=%d amx_bf16=%d amx_permitted=%d\n", f.avx2, f.fma,
              f.avx512f, f.avx512_bf16, f.amx_bf16, f.amx_permitted);
  std::printf("gemm:     %s; raw side links oneDNN %d.%d.%d (%s)\n", info.cpu_gemm.c_str(), v->major, v->minor,
              v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
  std::printf("method:   %d rounds of calls alternating A/B one by one, >= %.0f ms per side per round, median of per-round ratios\n\n",
              o.rounds, o.min_ms);
  std::printf("%-5s %-6s %-6s %-3s | %10s %10s | %8s %8s | %13s | %s\n", "M", "K", "N", "thr", "engine", "raw",
              "eng/raw", "glue %", "ratio p25-p75", "maxrel");
  std::printf("%-5s %-6s %-6s %-3s | %10s %10s | %8s %8s | %13s |\n", "", "", "", "", "GFLOP/s", "GFLOP/s", "", "", "");

  const std::vector<Case> cases = {{64, 1536, 1536},  {64, 1536, 8960},  {64, 8960, 1536},
                                   {128, 1536, 1536}, {128, 1536, 8960}, {128, 8960, 1536}};
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  int worst_fail = 0;

  cpu_set_t all_cpus;
  sched_getaffinity(0, sizeof all_cpus, &all_cpus);
  for (int threads : o.threads) {
    // Both sides on the same CPUs: with one thread, pin the process (the engine's worker inherits
    // it) to one CPU, or a slower vCPU of this VM would bias one side.
    cpu_set_t use = all_cpus;
    if (threads < CPU_COUNT(&all_cpus)) {
      CPU_ZERO(&use);
      for (int c = 0, left = threads; c < CPU_SETSIZE && left > 0; c++)
        if (CPU_ISSET(c, &all_cpus)) CPU_SET(c, &use), left--;
    }
    sched_setaffinity(0, sizeof use, &use);
    latte::EngineOptions eo;
    eo.backend = "cpu";
    eo.threads = threads;
    latte::Engine engine(eo);
    omp_set_num_threads(threads);  // the raw side runs on this thread's OpenMP team

    for (const Case& c : cases) {
      std::vector<float> x(size_t(c.m * c.k)), w(size_t(c.n * c.k)), y(size_t(c.m * c.n));
      const float ws = 1.f / std::sqrt(float(c.k));
      for (auto& e : x) e = uni(rng);
      for (auto& e : w) e = uni(rng) * ws;

      latte::Tensor tx = engine.upload(latte::DType::F32, latte::Shape{c.m, c.k}, x.data(), x.size() * 4);
      latte::Tensor tw = engine.upload(latte::DType::F32, latte::Shape{c.n, c.k}, w.data(), w.size() * 4);
      latte::OpAttrs pack_attrs;
      pack_attrs.dtype = latte::DType::F32;
      latte::Tensor packed = engine.enqueue(latte::Op::PackLinear, {&tw}, pack_attrs)[0];
      const latte::OpAttrs none;
      auto engine_call = [&] {
        latte::Tensor out = engine.enqueue(latte::Op::Linear, {&tx, &packed}, none)[0];
        latte::sync::fence(engine);
        return out;
      };

      RawMatmul raw(x.data(), w.data(), y.data(), c.m, c.k, c.n);

      // agreement check (same algorithm family: should be ~1e-6)
      std::vector<float> ye = latte::sync::read_f32(engine, engine_call());
      raw.run();
      double maxrel = 0, ymax = 0;
      for (float e : y) ymax = std::max(ymax, double(std::fabs(e)));
      for (size_t i = 0; i < y.size(); i++) maxrel = std::max(maxrel, std::fabs(double(ye[i]) - y[i]) / ymax);

      // calibrate the calls per round from one timed call of each
      double t0 = now_ms();
      engine_call();
      double t_eng = now_ms() - t0;
      t0 = now_ms();
      raw.run();
      double t_raw = now_ms() - t0;
      int reps = std::max(3, int(o.min_ms / std::max(1e-3, std::min(t_eng, t_raw))));

      const double flop = 2.0 * double(c.m) * double(c.k) * double(c.n);
      std::vector<double> ratio, g_eng, g_raw;
      for (int r = 0; r < o.rounds; r++) {
        // calls alternate one by one (A B B A A B ...), so a slow minute of this shared VM hits
        // both sides alike; the round's ratio is total raw time / total engine time
        double s_eng = 0, s_raw = 0;
        for (int i = 0; i < 2 * reps; i++) {
          bool eng_side = ((i + i / 2) % 2 == 0) == (r % 2 == 0);
          t0 = now_ms();
          if (eng_side)
            engine_call();
          else
            raw.run();
          (eng_side ? s_eng : s_raw) += now_ms() - t0;
        }
        ratio.push_back(s_raw / s_eng);  // engine speed relative to raw
        g_eng.push_back(flop * reps / s_eng / 1e6);
        g_raw.push_back(flop * reps / s_raw / 1e6);
      }
      double rel = median(ratio), glue = (1.0 / rel - 1.0) * 100.0;
      std::sort(ratio.begin(), ratio.end());
      const double lo = ratio[ratio.size() / 4], hi = ratio[(3 * ratio.size()) / 4];
      if (glue > 5.0) worst_fail++;
      std::printf("%-5lld %-6lld %-6lld %-3d | %10.1f %10.1f | %7.3fx %7.1f%% | %6.3f-%-6.3f | %.1e\n",
                  (long long)c.m, (long long)c.k, (long long)c.n, threads, median(g_eng), median(g_raw), rel, glue, lo, hi,
                  maxrel);
      std::printf("RESULT bench=linear m=%lld k=%lld n=%lld threads=%d engine_gflops=%.2f raw_gflops=%.2f "
                  "ratio=%.4f ratio_p25=%.4f ratio_p75=%.4f glue_pct=%.2f maxrel=%.2e reps=%d rounds=%d raw_impl=%s\n",
                  (long long)c.m, (long long)c.k, (long long)c.n, threads, median(g_eng), median(g_raw), rel, lo, hi,
                  glue, maxrel, reps, o.rounds, raw.impl.c_str());
      std::fflush(stdout);
    }
    latte::sync::dispose(engine);
    sched_setaffinity(0, sizeof all_cpus, &all_cpus);
  }
  std::printf("\nglue %% = (raw time / engine time)^-1 - 1 from the median per-round ratio; target <= 5%% "
              "(engine >= 0.95x raw). %d case(s) above target.\n",
              worst_fail);
  return 0;
}
