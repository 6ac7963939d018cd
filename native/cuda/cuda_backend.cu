// The CUDA backend: one device (0), one stream owned by the backend, and a stream-ordered memory
// pool of its own (cudaMallocFromPoolAsync; the pool keeps freed blocks, so steady-state ops cost
// no driver allocation). Every kernel runs on the stream in enqueue order; the host waits only in
// download() and synchronize(), i.e. at the engine's reads and fences.
#include <cuda_runtime.h>

#include <cstring>
#include <mutex>
#include <string>

#include "core/backend_select.h"
#include "cuda/cuda_kernels.h"

namespace latte {
namespace cuda {

void throw_cuda(cudaError_t e, const char* what) {
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  const char* c = e == cudaErrorMemoryAllocation ? code::kOom : code::kInternal;
  fail(c, std::string("CUDA ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

void* Context::workspace(size_t bytes) {
  if (bytes <= ws_bytes_) return ws_;
  release_workspace();
  if (live_graphs->load() == 0) release_kept();
  // grow by half again, so a slowly rising need does not reallocate every call
  size_t want = bytes + bytes / 2;
  void* p = nullptr;
  check_cuda(cudaMallocFromPoolAsync(&p, want, pool, stream), "workspace allocation");
  ws_ = p;
  ws_bytes_ = want;
  return ws_;
}

void Context::release_kept() {
  for (void* p : kept_) cudaFreeAsync(p, stream);
  kept_.clear();
}

void Context::release_workspace() {
  // stream-ordered: after every kernel that used it; a live captured graph may still use it at any
  // later launch, so while one lives the old block is kept (freed by release_kept once none does)
  if (ws_ && live_graphs->load() > 0) kept_.push_back(ws_);
  else if (ws_) cudaFreeAsync(ws_, stream);
  ws_ = nullptr;
  ws_bytes_ = 0;
}

PackedLinear::~PackedLinear() {
  if (data) cudaFree(data);  // waits for the device: safe from any thread, any time
}

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) {
    c_.device = device;
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    c_.sms = prop.multiProcessorCount;
    c_.smem_optin = prop.sharedMemPerBlockOptin;
    check_cuda(cudaStreamCreateWithFlags(&c_.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    cudaMemPoolProps pp{};
    pp.allocType = cudaMemAllocationTypePinned;
    pp.location.type = cudaMemLocationTypeDevice;
    pp.location.id = device;
    check_cuda(cudaMemPoolCreate(&c_.pool, &pp), "cudaMemPoolCreate");
    uint64_t keep = UINT64_MAX;  // never give freed blocks back on a sync: the pool is our cache
    check_cuda(cudaMemPoolSetAttribute(c_.pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
    check_cuda(cudaMalloc(&c_.index_error, sizeof(unsigned long long)), "cudaMalloc");
    check_cuda(cudaMemset(c_.index_error, 0xff, sizeof(unsigned long long)), "cudaMemset");
    check_cuda(cudaMallocHost(&host_error_, sizeof(unsigned long long)), "cudaMallocHost");
    check_cuda(cudaMallocHost(reinterpret_cast<void**>(&ring_), size_t(kSlots) * kSlotBytes), "cudaMallocHost");
    for (auto& e : slot_done_) check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  }

  // Never throws: runs at engine teardown, possibly after a device fault.
  ~CudaBackend() override {
    cudaSetDevice(c_.device);
    c_.release_workspace();
    c_.release_kept();
    cudaStreamSynchronize(c_.stream);
    cudaFree(c_.index_error);
    cudaFreeHost(host_error_);
    for (auto& e : slot_done_)
      if (e) cudaEventDestroy(e);
    cudaFreeHost(ring_);
    cudaMemPoolDestroy(c_.pool);  // blocks still out are released when their frees arrive
    cudaStreamDestroy(c_.stream);
    cudaGetLastError();
  }

  const char* name() const override { return "cuda"; }

  void* alloc(size_t bytes) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    void* p = nullptr;
    cudaError_t e = cudaMallocFromPoolAsync(&p, bytes, c_.pool, c_.stream);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;  // the pool reports E_OOM with the size
    }
    check_cuda(e, "device allocation");
    return p;
  }
  // Called from whichever thread drops the last reference; the free is ordered after every kernel
  // already enqueued on the stream, and those are the only ones that can still use the block.
  void free(void* p, size_t) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    cudaSetDevice(c_.device);
    if (cudaFreeAsync(p, c_.stream) != cudaSuccess) cudaGetLastError();
  }
  // Small uploads (a step's time features, positions, token ids) go through a pinned ring: an
  // async copy from pinned memory never waits for the stream, so they cost no host sync. A slot is
  // reused only after its previous copy completed (its event; that wait is a no-op unless the
  // device is a whole ring behind). Larger ones come from pageable memory: cudaMemcpyAsync stages
  // them and may wait, which weight loading can afford.
  void upload(void* dst, const void* src, size_t n) override {
    // a captured copy would read its ring slot at every launch, after later uploads rewrote it
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    check_cuda(cudaStreamIsCapturing(c_.stream, &capturing), "upload");
    if (capturing != cudaStreamCaptureStatusNone) fail(code::kInternal, "upload: not inside a captured program");
    if (n > kSlotBytes) {
      check_cuda(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c_.stream), "upload");
      return;
    }
    const int s = next_slot_;
    next_slot_ = (next_slot_ + 1) % kSlots;
    check_cuda(cudaEventSynchronize(slot_done_[s]), "upload staging");
    std::memcpy(ring_ + size_t(s) * kSlotBytes, src, n);
    check_cuda(cudaMemcpyAsync(dst, ring_ + size_t(s) * kSlotBytes, n, cudaMemcpyHostToDevice, c_.stream), "upload");
    check_cuda(cudaEventRecord(slot_done_[s], c_.stream), "upload staging");
  }
  void copy(void* dst, const void* src, size_t n) override {
    check_cuda(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c_.stream), "device copy");
  }
  void download(void* dst, const void* src, size_t n) override {
    check_cuda(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c_.stream), "download");
    synchronize();
  }
  void bind_thread(int) override { cudaSetDevice(c_.device); }

  // A program's kernels, captured from this stream into a graph (instantiated once, launched per
  // replay). The kernels' arguments are fixed at capture: the program's buffers never move, and a
  // workspace block stays allocated while a graph that may use it lives (Context::live_graphs).
  bool can_capture() const override { return true; }
  std::shared_ptr<void> capture(const std::function<void()>& enqueue) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    check_cuda(cudaStreamBeginCapture(c_.stream, cudaStreamCaptureModeThreadLocal), "graph capture");
    cudaGraph_t graph = nullptr;
    try {
      enqueue();
    } catch (...) {
      cudaStreamEndCapture(c_.stream, &graph);  // leave capture mode before reporting
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    check_cuda(cudaStreamEndCapture(c_.stream, &graph), "graph capture");
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check_cuda(e, "graph instantiation");
    auto live = c_.live_graphs;
    ++*live;
    return std::shared_ptr<void>(static_cast<void*>(exec), [live](void* g) {
      cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g));
      --*live;
    });
  }
  void launch(const void* captured) override {
    c_.index_check_pending = true;  // a captured embedding writes the error word with no host code running
    check_cuda(cudaGraphLaunch(static_cast<cudaGraphExec_t>(const_cast<void*>(captured)), c_.stream), "graph launch");
  }

  // Waits for the stream, then reports what kernels found on the way (an id out of range).
  void synchronize() override {
    if (c_.index_check_pending)
      check_cuda(cudaMemcpyAsync(host_error_, c_.index_error, sizeof(unsigned long long), cudaMemcpyDeviceToHost, c_.stream), "error word");
    check_cuda(cudaStreamSynchronize(c_.stream), "kernel execution");
    if (!c_.index_check_pending) return;
    c_.index_check_pending = false;
    const unsigned long long found = *host_error_;
    if (found == ~0ull) return;
    check_cuda(cudaMemsetAsync(c_.index_error, 0xff, sizeof(unsigned long long), c_.stream), "cudaMemset");
    fail(code::kIndex, "embedding: id " + std::to_string(int32_t(uint32_t(found & 0xffffffffu))) + " at position " +
                           std::to_string(found >> 32) + " is outside the table (an earlier op on the CUDA stream)");
  }

  std::shared_ptr<Packed> pack_linear(const Tensor& w, DType c) override { return cuda::pack_linear(c_, w, c); }
  void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override { cuda::linear(c_, x, w, b, y); }
  void embedding(const Tensor& t, const Tensor& ids, Tensor& y) override { cuda::embedding(c_, t, ids, y); }
  void rms_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, bool ch, Tensor& y) override {
    cuda::rms_norm(c_, x, w, b, eps, ch, y);
  }
  void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) override {
    cuda::layer_norm(c_, x, w, b, eps, y);
  }
  void rope(const RopeArgs& a) override { cuda::rope(c_, a); }
  void attention(const AttentionArgs& a) override { cuda::attention(c_, a); }
  void softmax(const Tensor& x, Tensor& y) override { cuda::softmax(c_, x, y); }
  void unary(Unary op, const Tensor& x, Tensor& y) override { cuda::unary(c_, op, x, y); }
  void binary(Binary op, const Tensor& a, const Tensor& b, Tensor& y) override { cuda::binary(c_, op, a, b, y); }
  void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, Tensor& y) override { cuda::axpby(c_, alpha, a, beta, b, y); }
  void relu_linear_attention(const Tensor& qkv, int d, float eps, Tensor& y) override { cuda::relu_linear_attention(c_, qkv, d, eps, y); }
  void swiglu(const Tensor& g, const Tensor& u, Tensor& y) override { cuda::swiglu(c_, g, u, y); }
  void modulate(const Tensor& x, const Tensor& s, const Tensor& c, Tensor& y) override { cuda::modulate(c_, x, s, c, y); }
  void gated_add(const Tensor& h, const Tensor& g, const Tensor& x, Tensor& y) override { cuda::gated_add(c_, h, g, x, y); }
  void conv2d(const Conv2dArgs& a) override { cuda::conv2d(c_, a); }
  void pixel_shuffle(const Tensor& x, int r, Tensor& y) override { cuda::pixel_shuffle(c_, x, r, y); }
  void upsample_nearest(const Tensor& x, int f, Tensor& y) override { cuda::upsample_nearest(c_, x, f, y); }
  void convert(const Tensor& x, Tensor& y) override { cuda::convert(c_, x, y); }
  void concat(const Tensor& a, const Tensor& b, int axis, Tensor& y) override { cuda::concat(c_, a, b, axis, y); }
  void permute(const Tensor& x, const int* perm, Tensor& y) override { cuda::permute(c_, x, perm, y); }
  void slice(const Tensor& x, int axis, int64_t start, Tensor& y) override { cuda::slice(c_, x, axis, start, y); }
  void write_rows(const Tensor& src, const Tensor& at, Tensor& dst) override { cuda::write_rows(c_, src, at, dst); }
  void zero(Tensor& y) override { check_cuda(cudaMemsetAsync(y.buf->data, 0, y.nbytes(), c_.stream), "cudaMemsetAsync"); }
  void advance(const Tensor& at, int64_t n, Tensor& y) override { cuda::advance(c_, at, n, y); }
  void normal_noise(uint64_t seed, uint64_t offset, Tensor& y) override { cuda::normal_noise(c_, seed, offset, y); }
  void sample_tokens(const Tensor& l, float temp, int k, float p, uint64_t seed, uint64_t step, const Tensor* step_at, Tensor& ids) override {
    if (temp > 0.f) {
      // a sampled draw is host code over downloaded logits, which a graph cannot hold: refusing the
      // capture here (before anything waits on the stream) leaves a program that draws running op by op
      cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
      check_cuda(cudaStreamIsCapturing(c_.stream, &capturing), "sample");
      if (capturing != cudaStreamCaptureStatusNone) fail(code::kInternal, "sample: a sampled draw cannot be captured");
      synchronize();  // the host path reads the logits: report earlier faults first
    }
    cuda::sample_tokens(c_, l, temp, k, p, seed, step, step_at, ids);
  }

 private:
  Context c_;
  // alloc/free may come from the stream thread and from JS-side releases at once; capture holds it
  // too, so a release from another thread cannot land on the stream while it is being captured
  std::recursive_mutex mu_;
  unsigned long long* host_error_ = nullptr;
  static constexpr int kSlots = 64;
  static constexpr size_t kSlotBytes = 64 << 10;
  uint8_t* ring_ = nullptr;  // pinned staging for small uploads (worker thread only)
  cudaEvent_t slot_done_[kSlots] = {};
  int next_slot_ = 0;
};

}  // namespace
}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend() {
  CudaProbe p = cuda_probe();
  if (!p.usable) fail(code::kBackend, "backend 'cuda' unavailable: " + p.reason);
  try {
    return std::make_unique<cuda::CudaBackend>(0);
  } catch (const EngineError& e) {
    fail(code::kBackend, std::string("backend 'cuda' could not start: ") + e.what());
  }
}

}  // namespace latte
