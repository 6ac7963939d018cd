#include "latte/engine.h"

#include <atomic>
#include <cstring>
#include <thread>

#include "core/backend.h"
#include "runtime/backend_select.h"
#include "io/safetensors.h"
#include "runtime/program.h"
#include "runtime/stream.h"

namespace latte {

static std::atomic<uint64_t> next_engine_id{1};

Engine::Engine(const EngineOptions& opts) : id_(next_engine_id++) {
  if (opts.threads < 0) fail(code::kArg, "threads must be >= 0");
  Selected sel = select_backend(opts.backend);
  backend_ = std::move(sel.backend);
  backend_name_ = sel.name;
  backend_reason_ = sel.reason;
  unsigned hw = std::thread::hardware_concurrency();
  threads_ = opts.threads > 0 ? opts.threads : int(hw ? hw : 1);
  pool_ = std::make_shared<MemoryPool>(backend_.get());
  Backend* be = backend_.get();
  int n = threads_;
  stream_ = std::make_unique<Stream>([be, n] { be->bind_thread(n); });
  counts_ = std::make_shared<WorkerCounts>();
}

Engine::~Engine() {
  stream_.reset();  // drops pending work and joins the worker
  if (pool_) pool_->release_all();
}

void Engine::check_live() const {
  if (disposed_) fail(code::kDisposed, "engine is disposed");
}

static void need_ready(const Tensor& t) {
  if (!t.buf->ready) fail(code::kNotComputed, "an input " + t.desc() + " was never computed (its op failed or was dropped)");
}

std::vector<Tensor> Engine::enqueue(Op id, const std::vector<const Tensor*>& inputs, const OpAttrs& attrs) {
  check_live();
  const OpDef* op = &op_def(id);
  const std::string name = op->name;
  if (int(inputs.size()) < op->min_inputs || int(inputs.size()) > op->max_inputs)
    fail(code::kArg, name + ": expects " + std::to_string(op->min_inputs) + ".." + std::to_string(op->max_inputs) + " operands, got " + std::to_string(inputs.size()));
  Inputs in(inputs);
  in.resize(op->max_inputs, nullptr);
  for (int i = 0; i < op->min_inputs; i++)
    if (!in[i]) fail(code::kArg, name + ": operand " + std::to_string(i) + " is required");
  for (auto* t : in)
    if (t && (!t->buf || t->buf->owner != id_)) fail(code::kArg, name + ": a tensor belongs to another engine");
  for (size_t i = 0; i < in.size(); i++)
    if (in[i] && in[i]->buf->is_packed && int(i) != op->packed_operand())
      fail(code::kArg, name + ": operand " + std::to_string(i) + " is a packed weight, usable only as a linear weight");
  for (auto* t : in)
    if (t && t->numel() == 0) fail(code::kShape, name + ": empty operand " + t->desc());
  std::vector<OutDesc> outs = op->infer(in, attrs);
  for (auto& d : outs) {
    double bytes = double(dtype_size(d.dtype));
    for (int i = 0; i < d.shape.ndim; i++) bytes *= double(d.shape.d[i]);
    if (bytes > double(int64_t(1) << 44)) fail(code::kOom, name + ": output " + d.shape.str() + " is too large");
  }

  std::vector<Tensor> result;
  for (auto& d : outs) {
    Tensor t;
    t.dtype = d.dtype;
    t.shape = d.shape;
    t.buf = std::make_shared<Buffer>();
    t.buf->owner = id_;
    t.buf->is_packed = d.packed;
    result.push_back(t);
  }
  // The task owns copies of its operands, so a tensor released by JS stays alive until the op ran.
  std::vector<Tensor> in_copy;
  for (auto* t : in) in_copy.push_back(t ? *t : Tensor{});
  auto pool = pool_;
  Backend* be = backend_.get();
  const bool in_program = recording_ != nullptr;  // the program allocates its buffers (Program::allocate)
  Task task;
  task.run = [op, in_copy, result, outs, attrs, pool, be, in_program]() mutable {
    Inputs ptrs;
    for (auto& t : in_copy) {
      if (t.buf) need_ready(t);
      ptrs.push_back(t.buf ? &t : nullptr);
    }
    if (!in_program)
      for (size_t i = 0; i < result.size(); i++) pool->allocate(*result[i].buf, outs[i].packed ? 0 : result[i].nbytes());
    op->run(*be, ptrs, result, attrs);
    for (auto& t : result) t.buf->ready = true;
  };
  if (recording_) {
    if (!op->recordable(in)) fail(code::kArg, name + " cannot be part of a program with these operands (core/op_list.h flags)");
    ProgramOp pop;
    pop.run = std::move(task.run);
    for (auto* t : in)
      if (t) pop.reads.push_back(t->buf.get());
    for (auto& t : result) pop.writes.emplace_back(t.buf.get(), t.nbytes());
    recording_->ops.push_back(std::move(pop));
    return result;
  }
  stream_->push(std::move(task));
  ops_enqueued_++;
  return result;
}

Tensor Engine::upload(DType dtype, const Shape& shape, const void* data, size_t bytes) {
  check_live();
  if (dtype == DType::Q8) fail(code::kDType, "q8 tensors come only from pack_linear; upload f32 or bf16 weights and pack them");
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  for (int i = 0; i < shape.ndim; i++)
    if (shape.d[i] < 0) fail(code::kShape, "negative dimension in " + shape.str());
  if (bytes != t.nbytes())
    fail(code::kShape, "data has " + std::to_string(bytes) + " bytes but " + t.desc() + " needs " + std::to_string(t.nbytes()));
  t.buf = std::make_shared<Buffer>();
  t.buf->owner = id_;
  auto staged = std::make_shared<std::vector<uint8_t>>(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
  auto pool = pool_;
  Backend* be = backend_.get();
  Task task;
  task.run = [t, staged, pool, be] {
    pool->allocate(*t.buf, staged->size());
    if (!staged->empty()) be->upload(t.buf->data, staged->data(), staged->size());
    t.buf->ready = true;
  };
  stream_->push(std::move(task));
  ops_enqueued_++;
  return t;
}

Tensor Engine::load(std::shared_ptr<io::Checkpoint> ck, const std::string& name, const DType* as) {
  check_live();
  const io::TensorEntry& e = ck->get(name);
  DType target;
  if (as) {
    target = *as;
  } else {
    switch (e.dtype) {
      case io::StDType::F64: case io::StDType::F32: target = DType::F32; break;
      case io::StDType::BF16: target = DType::BF16; break;
      case io::StDType::F16: target = DType::F16; break;
      default: target = DType::I32; break;
    }
  }
  if (!io::convertible(e.dtype, target))
    fail(code::kDType, "tensor '" + name + "' (" + e.dtype_name + ") cannot load as " + dtype_name(target));
  Tensor t;
  t.dtype = target;
  t.shape = e.shape;
  t.buf = std::make_shared<Buffer>();
  t.buf->owner = id_;
  auto pool = pool_;
  Backend* be = backend_.get();
  const io::TensorEntry* entry = &e;
  Task task;
  task.run = [t, ck, entry, pool, be] {  // ck keeps the mapping (and entry) alive
    pool->allocate(*t.buf, t.nbytes());
    std::vector<uint8_t> staged(t.nbytes());
    io::convert_entry(*entry, t.dtype, staged.data());
    if (!staged.empty()) be->upload(t.buf->data, staged.data(), staged.size());
    t.buf->ready = true;
  };
  stream_->push(std::move(task));
  ops_enqueued_++;
  return t;
}

Tensor Engine::reshape(const Tensor& t, const Shape& shape) {
  check_live();
  Tensor v = t;
  v.shape = shape;
  int64_t n = 1;
  for (int i = 0; i < shape.ndim; i++) {
    if (shape.d[i] < 0) fail(code::kShape, "negative dimension in " + shape.str());
    n *= shape.d[i];
  }
  if (n != t.numel()) fail(code::kShape, "cannot view " + t.desc() + " as " + shape.str());
  if (t.buf->is_packed) fail(code::kArg, "cannot view a packed weight");
  return v;
}

static Tensor fresh_like(const Tensor& like, uint64_t owner) {
  Tensor t;
  t.dtype = like.dtype;
  t.shape = like.shape;
  t.buf = std::make_shared<Buffer>();
  t.buf->owner = owner;
  return t;
}

std::shared_ptr<Program> Engine::record(const std::vector<Tensor>& like, const Body& body) {
  check_live();
  if (recording_) fail(code::kArg, "record: a program is already being recorded");
  auto p = std::make_shared<Program>();
  p->owner = id_;
  for (auto& t : like) {
    if (!t.buf || t.buf->owner != id_) fail(code::kArg, "record: an input belongs to another engine");
    if (t.buf->is_packed) fail(code::kArg, "record: a packed weight cannot be a program input");
    p->inputs.push_back(fresh_like(t, id_));
  }
  recording_ = p.get();
  try {
    p->outputs = body(p->inputs);
  } catch (...) {
    recording_ = nullptr;
    throw;
  }
  recording_ = nullptr;
  if (p->outputs.empty()) fail(code::kArg, "record: the body returned no outputs");
  for (auto& t : p->outputs)
    if (!t.buf || t.buf->owner != id_ || t.buf->is_packed) fail(code::kArg, "record: an output is not a tensor of this engine");
  p->plan_memory();
  programs_recorded_++;
  return p;
}

std::vector<Tensor> Engine::replay(const std::shared_ptr<Program>& p, const std::vector<const Tensor*>& inputs) {
  check_live();
  if (recording_) fail(code::kArg, "replay: cannot run a program while recording one");
  if (!p || p->owner != id_) fail(code::kArg, "replay: the program belongs to another engine");
  if (inputs.size() != p->inputs.size())
    fail(code::kArg, "replay: the program takes " + std::to_string(p->inputs.size()) + " inputs, got " + std::to_string(inputs.size()));
  std::vector<Tensor> in;
  for (size_t i = 0; i < inputs.size(); i++) {
    const Tensor* t = inputs[i];
    if (!t || !t->buf || t->buf->owner != id_ || t->buf->is_packed) fail(code::kArg, "replay: input " + std::to_string(i) + " is not a plain tensor of this engine");
    const Tensor& want = p->inputs[i];
    if (t->dtype != want.dtype || !(t->shape == want.shape))
      fail(code::kShape, "replay: input " + std::to_string(i) + " is " + t->desc() + ", the program was recorded for " + want.desc());
    in.push_back(*t);
  }
  std::vector<Tensor> result;
  for (auto& o : p->outputs) result.push_back(fresh_like(o, id_));
  auto pool = pool_;
  Backend* be = backend_.get();
  auto counts = counts_;
  Task task;
  task.run = [p, in, result, pool, be, counts]() mutable {
    if (!p->allocated) p->allocate(*pool);
    for (size_t i = 0; i < in.size(); i++) {
      need_ready(in[i]);
      Buffer& dst = *p->inputs[i].buf;
      be->copy(dst.data, in[i].buf->data, p->inputs[i].nbytes());
      dst.ready = true;
    }
    // run 1 is plain (it sizes every workspace); run 2 is captured. A capture the backend cannot make
    // leaves the program running op by op (an op's own error then surfaces in that plain run).
    if (!p->captured && !p->capture_failed && p->runs > 0 && be->can_capture()) {
      try {
        p->captured = be->capture([&p] {
          for (auto& op : p->ops) op.run();
        });
      } catch (const std::exception&) {
        p->capture_failed = true;
        counts->capture_failures++;
      }
    }
    if (p->captured) {
      be->launch(p->captured.get());
      counts->captured_launches++;
    } else {
      for (auto& op : p->ops) op.run();
    }
    p->runs++;
    for (size_t i = 0; i < result.size(); i++) {
      const Tensor& src = p->outputs[i];
      need_ready(src);
      pool->allocate(*result[i].buf, src.nbytes());
      be->copy(result[i].buf->data, src.buf->data, src.nbytes());
      result[i].buf->ready = true;
    }
  };
  stream_->push(std::move(task));
  ops_enqueued_++;
  replays_++;
  return result;
}

void Engine::read(const Tensor& t, ReadDone done) {
  check_live();
  if (recording_) fail(code::kArg, "read: not while a program is being recorded");
  if (!t.buf || t.buf->owner != id_) fail(code::kArg, "read: the tensor belongs to another engine");
  if (t.buf->is_packed) fail(code::kArg, "a packed weight cannot be read back");
  auto out = std::make_shared<std::vector<uint8_t>>();
  Backend* be = backend_.get();
  Task task;
  task.run = [t, out, be] {
    need_ready(t);
    be->synchronize();
    out->resize(t.nbytes());
    if (!out->empty()) be->download(out->data(), t.buf->data, out->size());
  };
  task.complete = [out, done](std::exception_ptr e) { done(std::move(*out), e); };
  stream_->push(std::move(task));
}

void Engine::fence(Done done) {
  check_live();
  if (recording_) fail(code::kArg, "fence: not while a program is being recorded");
  Backend* be = backend_.get();
  Task task;
  task.run = [be] { be->synchronize(); };
  task.complete = std::move(done);
  stream_->push(std::move(task));
}

size_t Engine::drop_pending() {
  check_live();
  return stream_->drop_pending();
}

void Engine::dispose(bool drop, Done done) {
  check_live();
  disposed_ = true;
  if (drop) stream_->drop_pending();
  auto pool = pool_;
  Backend* be = backend_.get();
  Task task;
  task.shutdown = true;
  task.run = nullptr;
  task.complete = [pool, be, done](std::exception_ptr) {
    // a device backend may report a fault here (it runs outside the stream's try): it dies with
    // the engine like a held error, and must not escape the worker thread
    try {
      be->synchronize();
    } catch (...) {
    }
    pool->release_all();  // a held stream error dies with the engine
    done(nullptr);
  };
  stream_->push(std::move(task));
}

void Engine::join() { stream_->join(); }

EngineStats Engine::stats() const {
  EngineStats s;
  s.bytes_in_use = pool_->bytes_in_use();
  s.peak_bytes = pool_->peak_bytes();
  s.ops_enqueued = ops_enqueued_;
  s.ops_run = stream_->ops_run();
  s.pending = stream_->pending();
  s.programs_recorded = programs_recorded_;
  s.replays = replays_;
  s.captured_launches = counts_->captured_launches.load();
  s.capture_failures = counts_->capture_failures.load();
  return s;
}

}  // namespace latte
