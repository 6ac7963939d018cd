// The CUDA backend: one device (0), one stream owned by the backend, and a stream-ordered memory
// pool of its own (cudaMallocFromPoolAsync; the pool keeps freed blocks, so steady-state ops cost
// no driver allocation). Every kernel runs on the stream in enqueue order; the host waits only in
// download() and synchronize(), i.e. at the engine's reads and fences.
#include <cuda_runtime.h>

#include <cstring>
#include <mutex>
#include <string>

#include "core/backend_info.h"
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

// Waits for the stream, then reports what kernels found on the way (an id out of range).
void Context::synchronize() {
  if (index_check_pending)
    check_cuda(cudaMemcpyAsync(host_error, index_error, sizeof(unsigned long long), cudaMemcpyDeviceToHost, stream), "error word");
  check_cuda(cudaStreamSynchronize(stream), "kernel execution");
  if (!index_check_pending) return;
  index_check_pending = false;
  const unsigned long long found = *host_error;
  if (found == ~0ull) return;
  check_cuda(cudaMemsetAsync(index_error, 0xff, sizeof(unsigned long long), stream), "cudaMemset");
  fail(code::kIndex, "embedding: id " + std::to_string(int32_t(uint32_t(found & 0xffffffffu))) + " at position " +
                         std::to_string(found >> 32) + " is outside the table (an earlier op on the CUDA stream)");
}

PackedLinear::~PackedLinear() {
  if (data) cudaFree(data);  // waits for the device: safe from any thread, any time
}

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) {
    ctx_.device = device;
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    ctx_.sms = prop.multiProcessorCount;
    ctx_.smem_optin = prop.sharedMemPerBlockOptin;
    check_cuda(cudaStreamCreateWithFlags(&ctx_.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    cudaMemPoolProps pp{};
    pp.allocType = cudaMemAllocationTypePinned;
    pp.location.type = cudaMemLocationTypeDevice;
    pp.location.id = device;
    check_cuda(cudaMemPoolCreate(&ctx_.pool, &pp), "cudaMemPoolCreate");
    uint64_t keep = UINT64_MAX;  // never give freed blocks back on a sync: the pool is our cache
    check_cuda(cudaMemPoolSetAttribute(ctx_.pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
    check_cuda(cudaMalloc(&ctx_.index_error, sizeof(unsigned long long)), "cudaMalloc");
    check_cuda(cudaMemset(ctx_.index_error, 0xff, sizeof(unsigned long long)), "cudaMemset");
    check_cuda(cudaMallocHost(&ctx_.host_error, sizeof(unsigned long long)), "cudaMallocHost");
    check_cuda(cudaMallocHost(reinterpret_cast<void**>(&ring_), size_t(kSlots) * kSlotBytes), "cudaMallocHost");
    for (auto& e : slot_done_) check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  }

  // Never throws: runs at engine teardown, possibly after a device fault.
  ~CudaBackend() override {
    cudaSetDevice(ctx_.device);
    ctx_.release_workspace();
    ctx_.release_kept();
    cudaStreamSynchronize(ctx_.stream);
    cudaFree(ctx_.index_error);
    cudaFreeHost(ctx_.host_error);
    for (auto& e : slot_done_)
      if (e) cudaEventDestroy(e);
    cudaFreeHost(ring_);
    cudaMemPoolDestroy(ctx_.pool);  // blocks still out are released when their frees arrive
    cudaStreamDestroy(ctx_.stream);
    cudaGetLastError();
  }

  const char* name() const override { return "cuda"; }

  void* alloc(size_t bytes) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    void* p = nullptr;
    cudaError_t e = cudaMallocFromPoolAsync(&p, bytes, ctx_.pool, ctx_.stream);
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
    cudaSetDevice(ctx_.device);
    if (cudaFreeAsync(p, ctx_.stream) != cudaSuccess) cudaGetLastError();
  }
  // Small uploads (a step's time features, positions, token ids) go through a pinned ring: an
  // async copy from pinned memory never waits for the stream, so they cost no host sync. A slot is
  // reused only after its previous copy completed (its event; that wait is a no-op unless the
  // device is a whole ring behind). Larger ones come from pageable memory: cudaMemcpyAsync stages
  // them and may wait, which weight loading can afford.
  void upload(void* dst, const void* src, size_t n) override {
    // a captured copy would read its ring slot at every launch, after later uploads rewrote it
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    check_cuda(cudaStreamIsCapturing(ctx_.stream, &capturing), "upload");
    if (capturing != cudaStreamCaptureStatusNone) fail(code::kInternal, "upload: not inside a captured program");
    if (n > kSlotBytes) {
      check_cuda(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, ctx_.stream), "upload");
      return;
    }
    const int s = next_slot_;
    next_slot_ = (next_slot_ + 1) % kSlots;
    check_cuda(cudaEventSynchronize(slot_done_[s]), "upload staging");
    std::memcpy(ring_ + size_t(s) * kSlotBytes, src, n);
    check_cuda(cudaMemcpyAsync(dst, ring_ + size_t(s) * kSlotBytes, n, cudaMemcpyHostToDevice, ctx_.stream), "upload");
    check_cuda(cudaEventRecord(slot_done_[s], ctx_.stream), "upload staging");
  }
  void copy(void* dst, const void* src, size_t n) override {
    check_cuda(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, ctx_.stream), "device copy");
  }
  void download(void* dst, const void* src, size_t n) override {
    check_cuda(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, ctx_.stream), "download");
    synchronize();
  }
  void bind_thread(int) override { cudaSetDevice(ctx_.device); }

  // A program's kernels, captured from this stream into a graph (instantiated once, launched per
  // replay). The kernels' arguments are fixed at capture: the program's buffers never move, and a
  // workspace block stays allocated while a graph that may use it lives (Context::live_graphs).
  bool can_capture() const override { return true; }
  std::shared_ptr<void> capture(const std::function<void()>& enqueue) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    check_cuda(cudaStreamBeginCapture(ctx_.stream, cudaStreamCaptureModeThreadLocal), "graph capture");
    cudaGraph_t graph = nullptr;
    try {
      enqueue();
    } catch (...) {
      cudaStreamEndCapture(ctx_.stream, &graph);  // leave capture mode before reporting
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    check_cuda(cudaStreamEndCapture(ctx_.stream, &graph), "graph capture");
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check_cuda(e, "graph instantiation");
    auto live = ctx_.live_graphs;
    ++*live;
    return std::shared_ptr<void>(static_cast<void*>(exec), [live](void* g) {
      cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g));
      --*live;
    });
  }
  void launch(const void* captured) override {
    ctx_.index_check_pending = true;  // a captured embedding writes the error word with no host code running
    check_cuda(cudaGraphLaunch(static_cast<cudaGraphExec_t>(const_cast<void*>(captured)), ctx_.stream), "graph launch");
  }

  void synchronize() override { ctx_.synchronize(); }


  // every kernel of core/kernel_list.h: cuda::name(ctx_, args...)
#define LATTE_BACKEND_NS cuda
  LATTE_KERNELS(LATTE_FORWARD_TO_KERNEL)
#undef LATTE_BACKEND_NS

 private:
  Context ctx_;
  // alloc/free may come from the stream thread and from JS-side releases at once; capture holds it
  // too, so a release from another thread cannot land on the stream while it is being captured
  std::recursive_mutex mu_;
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
