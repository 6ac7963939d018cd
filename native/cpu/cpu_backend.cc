// The CPU backend: host memory, OpenMP threads, oneDNN for GEMM and convolution.
#include <omp.h>
#include <xmmintrin.h>
#include <pmmintrin.h>

#include <cstdlib>
#include <cstring>

#include "cpu/cpu_kernels.h"
#include "cpu/host_memory.h"

namespace latte {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend() : features_(cpu::detect_features()) {}
  const char* name() const override { return "cpu"; }
  void* alloc(size_t bytes) override { return cpu::host_alloc(bytes); }
  void free(void* p, size_t) override { cpu::host_free(p); }
  void upload(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void download(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void copy(void* dst, const void* src, size_t n) override { std::memcpy(dst, src, n); }
  void synchronize() override {}

  // Denormals: chains of matmuls drifting into subnormals run many times slower; flush them on
  // the stream thread and every OpenMP thread of its team.
  void bind_thread(int threads) override {
    omp_set_num_threads(threads);
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#pragma omp parallel
    {
      _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
      _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    }
  }

  std::shared_ptr<Packed> pack_linear(const Tensor& w, DType c) override { return cpu::pack_linear(w, c, features_); }
  void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override {
    cpu::linear(x, w, b, y, arena_, features_);
    arena_.reset();
  }
  void embedding(const Tensor& t, const Tensor& ids, Tensor& y) override { cpu::embedding(t, ids, y); }
  void rms_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, bool ch, Tensor& y) override {
    cpu::rms_norm(x, w, b, eps, ch, y);
  }
  void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) override {
    cpu::layer_norm(x, w, b, eps, y);
  }
  void rope(const RopeArgs& a) override { cpu::rope(a); }
  void attention(const AttentionArgs& a) override {
    cpu::attention(a, arena_);
    arena_.reset();
  }
  void softmax(const Tensor& x, Tensor& y) override { cpu::softmax(x, y); }
  void unary(Unary op, const Tensor& x, Tensor& y) override { cpu::unary(op, x, y); }
  void binary(Binary op, const Tensor& a, const Tensor& b, Tensor& y) override { cpu::binary(op, a, b, y); }
  void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, Tensor& y) override { cpu::axpby(alpha, a, beta, b, y); }
  void relu_linear_attention(const Tensor& qkv, int d, float eps, Tensor& y) override { cpu::relu_linear_attention(qkv, d, eps, y); }
  void swiglu(const Tensor& g, const Tensor& u, Tensor& y) override { cpu::swiglu(g, u, y); }
  void modulate(const Tensor& x, const Tensor& s, const Tensor& c, Tensor& y) override { cpu::modulate(x, s, c, y); }
  void gated_add(const Tensor& h, const Tensor& g, const Tensor& x, Tensor& y) override { cpu::gated_add(h, g, x, y); }
  void conv2d(const Conv2dArgs& a) override { cpu::conv2d(a); }
  void pixel_shuffle(const Tensor& x, int r, Tensor& y) override { cpu::pixel_shuffle(x, r, y); }
  void upsample_nearest(const Tensor& x, int f, Tensor& y) override { cpu::upsample_nearest(x, f, y); }
  void convert(const Tensor& x, Tensor& y) override { cpu::convert(x, y); }
  void concat(const Tensor& a, const Tensor& b, int axis, Tensor& y) override { cpu::concat(a, b, axis, y); }
  void permute(const Tensor& x, const int* perm, Tensor& y) override { cpu::permute(x, perm, y); }
  void slice(const Tensor& x, int axis, int64_t start, Tensor& y) override { cpu::slice(x, axis, start, y); }
  void write_rows(const Tensor& src, const Tensor& at, Tensor& dst) override { cpu::write_rows(src, at, dst); }
  void zero(Tensor& y) override { std::memset(y.buf->data, 0, y.nbytes()); }
  void advance(const Tensor& at, int64_t n, Tensor& y) override { *y.ptr<int32_t>() = int32_t(*at.ptr<int32_t>() + n); }
  void normal_noise(uint64_t seed, uint64_t offset, Tensor& y) override { cpu::normal_noise(seed, offset, y); }
  void sample_tokens(const Tensor& l, float temp, int k, float p, uint64_t seed, uint64_t step, const Tensor* step_at, Tensor& ids) override {
    cpu::sample_tokens(l, temp, k, p, seed, step, step_at, ids);
  }

 private:
  CpuFeatures features_;
  Arena arena_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace latte
