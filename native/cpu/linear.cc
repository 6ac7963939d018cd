// Linear layers on oneDNN: y = x W^T + b with W in nn.Linear layout [out, in].
// pack_linear reorders W once into the layout oneDNN's matmul wants (bf16 on AMX / AVX512-BF16,
// f32 otherwise). Rows M = 1 with 16-bit weights go to our own GEMV: decode is bound by weight
// bandwidth and oneDNN gains nothing there.
// 8-bit weights (compute Q8, core/quant.h) keep only their int8 blocks (gemv_q8.cc): up to
// kQ8GemvRows rows go to the int8 GEMV; more rows dequantise W into scratch in the layout oneDNN's
// matmul wants and run it as a bf16 weight would (bf16 where oneDNN has native bf16 kernels, so W
// and x round to bf16 there, else f32). oneDNN ran ~4x slower from plain rows than from its own
// blocked layout at 128 rows, so the known blocked layouts are written directly
// (dequantise_q8_blocked), any other through plain f32 rows and a reorder.
#include <dnnl.hpp>

#include <cstring>
#include <map>
#include <tuple>

#include "cpu/cpu_kernels.h"
#include "cpu/onednn.h"

namespace latte::cpu {
namespace {

using namespace onednn;

constexpr int64_t kNominalRows = 128;  // the generator's image-token count; packing is chosen for it
// q8: rows the GEMV takes (it reads W once for all of them, at ~0.5 ms a row for 2B's q/k/v/gate/up at
// 1 thread); the dequantising panel path costs ~20 ms up front, so it wins from ~40 rows (RESULTS 13)
constexpr int64_t kQ8GemvRows = 32;

struct PackedLinear final : Packed {
  int64_t n = 0, k = 0;
  DType compute = DType::F32;
  memory::desc wdesc;
  memory wmem;                     // packed for matmul
  std::vector<uint16_t, HostAllocator<uint16_t>> bf16_rows;  // bf16 copy in gemv.cc's streaming layout, for M = 1 (16-bit weights only)
  std::map<std::pair<int64_t, bool>, dnnl::matmul> prims;  // (rows, has_bias) -> primitive
  int plain = 0;                    // packed layout is plain f32: 1 = [k, n] (ab), 2 = [n, k] (ba)
  Q8Weights q8;                     // compute Q8: the only copy of W; wdesc is then the panel's plain [n, k]
  size_t bytes() const override { return compute == DType::Q8 ? q8.bytes() : wdesc.get_size() + bf16_rows.size() * 2; }
};

dnnl::matmul::primitive_desc make_pd(int64_t m, int64_t k, int64_t n, dt src_dt, const memory::desc& wd, bool bias) {
  memory::desc src({m, k}, src_dt, tag::ab);
  memory::desc dst({m, n}, dt::f32, tag::ab);
  if (bias) {
    memory::desc bd({1, n}, dt::f32, tag::ab);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wd, bd, dst), eng());
  }
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wd, dst), eng());
}

bool native_bf16_matmul(int64_t k, int64_t n) {
  try {
    memory::desc wd({k, n}, dt::bf16, tag::any);
    auto pd = make_pd(kNominalRows, k, n, dt::bf16, wd, false);
    std::string impl = pd.impl_info_str();
    return impl.find("ref") == std::string::npos;
  } catch (const dnnl::error&) {
    return false;
  }
}

// A [k, n] view of nn.Linear's [n, k] weight: format 'ba' reads it transposed with no copy.
memory plain_weight(const float* w, int64_t n, int64_t k) {
  return memory(memory::desc({k, n}, dt::f32, tag::ba), eng(), const_cast<float*>(w));
}

// q8 with many rows: W dequantised into scratch in the matmul's layout (pack_linear chose it)
memory q8_panel(const PackedLinear& p, Arena& arena, const CpuFeatures& f) {
  memory panel(p.wdesc, eng(), arena.take(p.wdesc.get_size()));
  const auto& d = p.wdesc.data;
  const auto& blk = d.format_desc.blocking;
  const bool bf16 = p.wdesc.data_type() == dt::bf16;
  const bool tiles = d.format_kind == dnnl_blocked && blk.inner_nblks == (bf16 ? 3 : 2) && blk.inner_blks[0] == 16 &&
                     blk.inner_idxs[0] == 0 && blk.inner_blks[1] == 64 && blk.inner_idxs[1] == 1 &&
                     (!bf16 || (blk.inner_blks[2] == 2 && blk.inner_idxs[2] == 0));
  const int64_t strides[2] = {blk.strides[0], blk.strides[1]};
  if (tiles && dequantise_q8_blocked(p.q8, panel.get_data_handle(), bf16, strides, d.padded_dims[0], d.padded_dims[1], f)) return panel;
  float* plain = arena.take_n<float>(size_t(p.n * p.k));
  dequantise_q8(p.q8, plain);
  memory src = plain_weight(plain, p.n, p.k);
  dnnl::reorder(src, panel).execute(strm(), src, panel);
  return panel;
}

}  // namespace

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + (v->cpu_runtime == DNNL_RUNTIME_OMP ? " (OpenMP)" : "");
}

void convert_rows(const Tensor& src, float* dst) {
  int64_t n = src.numel();
  if (src.dtype == DType::F32) {
    std::memcpy(dst, src.buf->data, size_t(n) * 4);
  } else if (src.dtype == DType::BF16) {
    const uint16_t* s = src.ptr<uint16_t>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
  } else if (src.dtype == DType::F16) {
    const uint16_t* s = src.ptr<uint16_t>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
  } else {
    fail(code::kDType, "cannot convert " + src.desc() + " to f32");
  }
}

std::shared_ptr<Packed> pack_linear(Context& ctx, const Tensor& w, DType compute) {
  auto p = std::make_shared<PackedLinear>();
  p->n = w.shape[0];
  p->k = w.shape[1];
  if (compute == DType::Q8) {
    std::vector<float> w32(size_t(p->n * p->k));
    convert_rows(w, w32.data());
    p->q8 = pack_q8(w32.data(), p->n, p->k);
    p->compute = DType::Q8;
    const dt pdt = native_bf16_matmul(p->k, p->n) ? dt::bf16 : dt::f32;
    memory::desc any({p->k, p->n}, pdt, tag::any);
    p->wdesc = make_pd(kNominalRows, p->k, p->n, pdt, any, false).weights_desc();
    return p;
  }
  bool want_bf16 = compute == DType::BF16 || w.dtype != DType::F32;
  p->compute = compute == DType::BF16 && native_bf16_matmul(p->k, p->n) ? DType::BF16 : DType::F32;
  dt wdt = p->compute == DType::BF16 ? dt::bf16 : dt::f32;

  // user weights as f32 (or bf16 when that is both the source and the compute type)
  std::vector<float> w32(size_t(p->n * p->k));
  convert_rows(w, w32.data());
  if (want_bf16) {
    std::vector<uint16_t> rows(w32.size());
    if (w.dtype == DType::BF16)
      std::memcpy(rows.data(), w.buf->data, w32.size() * 2);
    else
      for (size_t i = 0; i < w32.size(); i++) rows[i] = f32_to_bf16(w32[i]);
    p->bf16_rows = pack_gemv_bf16(rows.data(), p->n, p->k);
    // the GEMM (M > 1) then uses the same bf16-rounded weights as the GEMV: one model either way
    for (size_t i = 0; i < w32.size(); i++) w32[i] = bf16_to_f32(rows[i]);
  }
  memory::desc any({p->k, p->n}, wdt, tag::any);
  p->wdesc = make_pd(kNominalRows, p->k, p->n, wdt, any, false).weights_desc();
  // When oneDNN wants no blocking (its AVX2 gemm), keep nn.Linear's own row order: the GEMM is as
  // fast either way, and M = 1 then streams whole weight rows (see gemv_f32).
  if (p->wdesc.data.format_kind == dnnl_blocked && p->wdesc.data.format_desc.blocking.inner_nblks == 0)
    p->wdesc = memory::desc({p->k, p->n}, wdt, tag::ba);
  p->wmem = memory(p->wdesc, eng());
  memory src = plain_weight(w32.data(), p->n, p->k);
  dnnl::reorder(src, p->wmem).execute(strm(), src, p->wmem);
  strm().wait();
  const auto& blk = p->wdesc.data.format_desc.blocking;
  if (wdt == dt::f32 && p->wdesc.data.format_kind == dnnl_blocked && blk.inner_nblks == 0)
    p->plain = blk.strides[1] == 1 ? 1 : blk.strides[0] == 1 ? 2 : 0;
  return p;
}

void linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  ArenaReset reset{ctx.arena};
  Arena& arena = ctx.arena;
  const CpuFeatures& f = ctx.features;
  const int64_t m = x.shape.rows(), k = x.shape[-1], n = w.shape[0];
  const float* bias = b ? b->f32() : nullptr;
  auto* packed = dynamic_cast<PackedLinear*>(w.buf->packed.get());

  if (packed && packed->compute == DType::Q8 && m <= kQ8GemvRows) {
    gemv_q8(x.f32(), m, packed->q8, bias, y.f32(), f, arena);
    return;
  }
  // M = 1 with 16-bit weights: our GEMV streams half the bytes of an f32 GEMV.
  if (m == 1 && packed && !packed->bf16_rows.empty()) {
    gemv_bf16_packed(x.f32(), packed->bf16_rows.data(), bias, y.f32(), n, k, f);
    return;
  }
  if (m == 1 && !packed && w.dtype == DType::BF16) {
    gemv_bf16(x.f32(), w.ptr<uint16_t>(), bias, y.f32(), n, k, f);
    return;
  }
  // M = 1 with f32 weights in a plain layout: a streaming GEMV beats a GEMM call set up for 128 rows
  if (m == 1 && packed && packed->plain) {
    gemv_f32(x.f32(), static_cast<const float*>(packed->wmem.get_data_handle()), packed->plain == 1, bias, y.f32(), n, k);
    return;
  }
  if (m == 1 && !packed && w.dtype == DType::F32) {
    gemv_f32(x.f32(), w.f32(), false, bias, y.f32(), n, k);
    return;
  }

  memory wmem;
  memory::desc wd;
  dt src_dt = dt::f32;
  dnnl::matmul prim;
  if (packed) {
    src_dt = packed->compute == DType::Q8 ? packed->wdesc.data_type() : packed->compute == DType::BF16 ? dt::bf16 : dt::f32;
    auto key = std::make_pair(m, bias != nullptr);
    auto it = packed->prims.find(key);
    if (it == packed->prims.end())
      it = packed->prims.emplace(key, dnnl::matmul(make_pd(m, k, n, src_dt, packed->wdesc, bias))).first;
    prim = it->second;
    wmem = packed->compute == DType::Q8 ? q8_panel(*packed, arena, f) : packed->wmem;
  } else {
    // An unpacked weight: read f32 in place, convert 16-bit ones into scratch. Primitives are
    // cached by shape: the same layers are called again and again.
    const float* w32 = w.dtype == DType::F32 ? w.f32() : nullptr;
    if (!w32) {
      float* tmp = arena.take_n<float>(size_t(n * k));
      convert_rows(w, tmp);
      w32 = tmp;
    }
    wmem = plain_weight(w32, n, k);
    thread_local std::map<std::tuple<int64_t, int64_t, int64_t, bool>, dnnl::matmul> cache;
    auto key = std::make_tuple(m, k, n, bias != nullptr);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, dnnl::matmul(make_pd(m, k, n, dt::f32, wmem.get_desc(), bias))).first;
    prim = it->second;
  }

  void* src_ptr = x.buf->data;
  if (src_dt == dt::bf16) {  // AMX path: activations go bf16, accumulation stays f32
    uint16_t* xs = arena.take_n<uint16_t>(size_t(m * k));
    const float* xf = x.f32();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m * k; i++) xs[i] = f32_to_bf16(xf[i]);
    src_ptr = xs;
  }
  memory src(memory::desc({m, k}, src_dt, tag::ab), eng(), src_ptr);
  memory dst(memory::desc({m, n}, dt::f32, tag::ab), eng(), y.buf->data);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_DST, dst}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(memory::desc({1, n}, dt::f32, tag::ab), eng(), const_cast<float*>(bias)));
  prim.execute(strm(), args);
  strm().wait();
}

}  // namespace latte::cpu
