// Native tests of the engine core that need no Node: dtype rounding, the arena, the op layer's
// shape checks and the stream's ordering and error rules (and, in model_config_tests.cc, config
// reading; in attention_tests.cc, the CPU attention's two register tiles). Prints TAP.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <future>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/dtype.h"
#include "latte/engine.h"
#include "latte/sync.h"
#include "runtime/program.h"

using namespace latte;

void model_config_tests(const std::function<void(bool, const std::string&)>& ok);  // model_config_tests.cc
void attention_tests(const std::function<void(bool, const std::string&)>& ok);     // attention_tests.cc

static int g_n = 0, g_fail = 0;
static void ok(bool cond, const std::string& name) {
  g_n++;
  if (!cond) g_fail++;
  std::printf("%s %d - %s\n", cond ? "ok" : "not ok", g_n, name.c_str());
}
static std::string code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const EngineError& e) {
    return e.code;
  }
  return "";
}
static std::string fence_code(Engine& e) {
  std::promise<std::string> p;
  e.fence([&](std::exception_ptr err) {
    std::string c;
    if (err) try {
        std::rethrow_exception(err);
      } catch (const EngineError& x) {
        c = x.code;
      }
    p.set_value(c);
  });
  return p.get_future().get();
}

int main() {
  // dtype conversions: round to nearest even, like PyTorch
  ok(f32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
  ok(f32_to_bf16(1.00390625f) == 0x3f80, "bf16 ties to even (down)");
  ok(f32_to_bf16(1.01171875f) == 0x3f82, "bf16 ties to even (up)");
  ok(std::isnan(bf16_to_f32(f32_to_bf16(NAN))), "bf16 keeps NaN");
  ok(f32_to_f16(65504.f) == 0x7bff && f32_to_f16(65520.f) == 0x7c00, "f16 max and overflow");
  ok(f16_to_f32(0x0001) == std::ldexp(1.f, -24), "f16 smallest subnormal");
  bool all = true;
  for (uint32_t h = 0; h < 0x7c00; h++) all &= f32_to_f16(f16_to_f32(uint16_t(h))) == h;
  ok(all, "f16 round trip of every finite half");

  // arena: aligned, reusable after reset, grows
  Arena arena;
  auto* a = arena.take_n<float>(10);
  auto* b = arena.take_n<float>(3);
  ok(reinterpret_cast<uintptr_t>(a) % 64 == 0 && reinterpret_cast<uintptr_t>(b) % 64 == 0, "arena alignment");
  arena.take(8 << 20);
  arena.reset();
  ok(arena.capacity() >= (8u << 20), "arena keeps its grown capacity");

  model_config_tests(ok);
  attention_tests(ok);

  // the op layer rejects bad operands at enqueue, with codes
  Engine e(EngineOptions{"cpu", 1});
  float xs[6] = {1, 2, 3, 4, 5, 6};
  Tensor x = e.upload(DType::F32, Shape{2, 3}, xs, sizeof xs);
  Tensor w = e.upload(DType::F32, Shape{2, 2}, xs, 16);
  ok(code_of([&] { e.enqueue(Op::Linear, {&x, &w}, {}); }) == code::kShape, "linear shape mismatch -> E_SHAPE");
  ok(find_op("no_such_op") == nullptr && find_op("add") == &op_def(Op::Add), "ops by name: only the N-API boundary's lookup");
  ok(code_of([&] { e.enqueue(Op::Add, {&x}, {}); }) == code::kArg, "missing operand -> E_ARG");
  ok(code_of([&] { e.upload(DType::F32, Shape{2, 3}, xs, 8); }) == code::kShape, "upload size mismatch -> E_SHAPE");
  ok(code_of([] { Engine bad(EngineOptions{"gpu9", 1}); }) == code::kArg, "unknown backend -> E_ARG");

  // ordering: a chain of adds reads back in order
  Tensor acc = x;
  for (int i = 0; i < 100; i++) acc = e.enqueue(Op::Add, {&acc, &x}, {})[0];
  auto v = sync::read_f32(e, acc);
  ok(v.size() == 6 && v[0] == 101.f && v[5] == 606.f, "100 queued adds in order");

  // a failing op holds its error for the next fence only
  int32_t ids[1] = {7};
  Tensor table = e.upload(DType::F32, Shape{3, 2}, xs, sizeof xs);
  Tensor bad_ids = e.upload(DType::I32, Shape{1}, ids, 4);
  Tensor g = e.enqueue(Op::Embedding, {&table, &bad_ids}, {})[0];
  ok(fence_code(e) == code::kIndex, "run-time error surfaces at the fence");
  ok(fence_code(e).empty(), "and only once");
  Tensor g2 = e.enqueue(Op::Add, {&g, &g}, {})[0];
  ok(fence_code(e) == code::kNotComputed, "an op on a failed op's output -> E_NOT_COMPUTED");
  {
    int32_t zero = 0;
    Tensor at = e.upload(DType::I32, Shape{1}, &zero, 4);
    OpAttrs one;
    one.length = 1;
    e.enqueue(Op::Advance, {&at, &g}, one);  // g: the failed embedding's output (the error was fenced)
    ok(fence_code(e) == code::kNotComputed, "advance waits for its `after` operand: a failed one leaves the count uncomputed");
    Tensor done = e.enqueue(Op::Advance, {&at, &at}, one)[0];
    int32_t got = -1;
    std::vector<float> raw = sync::read_f32(e, done);  // the 4 bytes of the i32
    std::memcpy(&got, raw.data(), 4);
    ok(got == 1, "advance: 0 + 1 = " + std::to_string(got));
  }

  // programs: record once (nothing runs), replay on new inputs, fresh outputs each time
  {
    sync::read_f32(e, x);
    const int64_t bytes0 = e.stats().bytes_in_use, run0 = e.stats().ops_run;
    OpAttrs ax;
    ax.alpha = 2.f;
    ax.beta = -1.f;
    auto body = [&](const std::vector<Tensor>& in) {
      Tensor s = e.enqueue(Op::Silu, {&in[0]}, {})[0];
      Tensor y = e.enqueue(Op::Axpby, {&s, &in[1]}, ax)[0];  // 2 silu(a) - b
      return std::vector<Tensor>{y, e.enqueue(Op::Add, {&y, &w}, {})[0]};
    };
    auto eager = [&](const Tensor& a, const Tensor& bb) {
      Tensor s = e.enqueue(Op::Silu, {&a}, {})[0];
      Tensor y = e.enqueue(Op::Axpby, {&s, &bb}, ax)[0];
      return sync::read_f32(e, y);
    };
    float ys[4] = {-1, 0.5f, 3, -2};
    Tensor a1 = e.upload(DType::F32, Shape{2, 2}, xs, 16), a2 = e.upload(DType::F32, Shape{2, 2}, ys, 16);
    auto prog = e.record({a1, a2}, body);
    sync::read_f32(e, a2);
    ok(e.stats().ops_run == run0 + 2 && e.stats().programs_recorded == 1, "recording a program runs none of its ops");
    auto r1 = e.replay(prog, {&a1, &a2});
    auto r2 = e.replay(prog, {&a2, &a1});
    ok(sync::read_f32(e, r1[0]) == eager(a1, a2) && sync::read_f32(e, r2[0]) == eager(a2, a1),
       "replays equal eager runs on their own inputs (and the first result survives the second replay)");
    auto sum = sync::read_f32(e, r2[1]), y2 = eager(a2, a1);
    ok(sum.size() == 4 && sum[3] == y2[3] + xs[3], "a program's second output");
    ok(e.stats().replays == 2 && e.stats().captured_launches == 0, "replays counted; the CPU captures nothing");
    ok(code_of([&] { e.replay(prog, {&a1}); }) == code::kArg, "replay with too few inputs -> E_ARG");
    ok(code_of([&] { e.replay(prog, {&a1, &x}); }) == code::kShape, "replay with a wrong shape -> E_SHAPE");
    ok(code_of([&] { e.record({a1}, [&](const std::vector<Tensor>& in) {
         sync::read_f32(e, in[0]);
         return in;
       }); }) == code::kArg,
       "read while recording -> E_ARG");
    ok(code_of([&] { e.record({a1}, [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{e.enqueue(Op::Linear, {&in[0], &x}, {})[0]}; }); }) == code::kShape,
       "a shape error in the body throws from record()");
    ok(code_of([&] { e.record({a1}, [&](const std::vector<Tensor>& in) { return e.enqueue(Op::Sample, {&in[0]}, {}); }); }) == code::kArg,
       "sampling with its step as an attribute cannot be recorded (a replay would repeat its draw)");
    ok(sync::read_f32(e, e.enqueue(Op::Add, {&a1, &a1}, {})[0])[3] == 8.f, "after a failed recording, ops run again");
    // an error inside a replay is held like any op's, and the program still works afterwards
    int32_t good[1] = {1};
    Tensor ok_ids = e.upload(DType::I32, Shape{1}, good, 4);
    auto lookup = e.record({ok_ids}, [&](const std::vector<Tensor>& in) { return e.enqueue(Op::Embedding, {&table, &in[0]}, {}); });
    auto bad = e.replay(lookup, {&bad_ids});
    ok(fence_code(e) == code::kIndex, "an op failing inside a replay reports at the fence");
    auto fine = sync::read_f32(e, e.replay(lookup, {&ok_ids})[0]);
    ok(fine.size() == 2 && fine[0] == xs[2] && fine[1] == xs[3], "the next replay runs");
    // the memory plan: a chain of 20 ops keeps two intermediates alive at a time, not 20
    std::vector<float> big(64 * 64, 0.5f);
    Tensor m = e.upload(DType::F32, Shape{64, 64}, big.data(), big.size() * 4);
    auto chain = e.record({m}, [&](const std::vector<Tensor>& in) {
      Tensor h = in[0];
      for (int i = 0; i < 20; i++) h = e.enqueue(Op::Add, {&h, &in[0]}, {})[0];
      return std::vector<Tensor>{h};
    });
    sync::read_f32(e, m);
    const int64_t before_chain = e.stats().bytes_in_use;
    auto chained = sync::read_f32(e, e.replay(chain, {&m})[0]);
    fence_code(e);  // the read's task (which holds the result) is gone once a later fence completes
    const int64_t program_bytes = e.stats().bytes_in_use - before_chain;
    ok(chained[0] == 10.5f && chained[4095] == 10.5f, "a 20-op chain replays right with shared intermediates");
    ok(program_bytes <= 4 * 64 * 64 * 4, "its program holds at most 4 buffers' worth (placeholder, output, 2 intermediates): " + std::to_string(program_bytes) + " bytes");
    // an output that cannot be allocated (E_OOM) leaks nothing however often it is retried
    OpAttrs huge;
    huge.shape = Shape{int64_t(1) << 38};  // 1 TiB of f32: no machine here has it
    auto oom = e.record({m}, [&](const std::vector<Tensor>& in) {
      Tensor s1 = e.enqueue(Op::Silu, {&in[0]}, {})[0];
      return std::vector<Tensor>{e.enqueue(Op::Add, {&s1, &in[0]}, {})[0], e.enqueue(Op::Noise, {}, huge)[0]};
    });
    sync::read_f32(e, m);
    const int64_t before_oom = e.stats().bytes_in_use;
    std::string codes;
    int64_t grew = 0;
    for (int i = 0; i < 3; i++) {
      e.replay(oom, {&m});
      codes += fence_code(e) + " ";
      grew = e.stats().bytes_in_use - before_oom;
    }
    ok(codes == "E_OOM E_OOM E_OOM " && grew <= 3 * 64 * 64 * 4, "an out-of-memory output: E_OOM on every try, memory does not grow (" + std::to_string(grew) + " bytes held)");
    oom.reset();
    chain.reset();
    m = Tensor{};
    prog.reset();
    lookup.reset();
    r1.clear();
    r2.clear();
    bad.clear();
    sync::read_f32(e, x);
    ok(e.stats().bytes_in_use == bytes0 + 16 + 16 + 4, "a released program's buffers go back");  // only a1, a2 and ok_ids remain
  }

  // in place (a K/V cache update): write_rows writes rows of operand 0 at an offset read when it
  // runs, so one recorded step appends at a new place on every replay
  {
    OpAttrs z;
    z.shape = Shape{1, 4, 2};
    Tensor cache = e.enqueue(Op::Zeros, {}, z)[0];
    Tensor row = e.upload(DType::F32, Shape{1, 1, 2}, xs, 8);
    auto step = e.record({row, e.upload(DType::I32, Shape{1}, std::vector<int32_t>{0}.data(), 4)}, [&](const std::vector<Tensor>& in) {
      ok(e.enqueue(Op::WriteRows, {&cache, &in[0], &in[1]}, {}).empty(), "write_rows returns no outputs");
      return std::vector<Tensor>{e.enqueue(Op::Add, {&cache, &cache}, {})[0]};
    });
    std::vector<float> last;
    for (int32_t at = 0; at < 3; at++) {
      float r[2] = {float(at + 1), float(-at - 1)};
      Tensor in_row = e.upload(DType::F32, Shape{1, 1, 2}, r, 8);
      Tensor in_at = e.upload(DType::I32, Shape{1}, &at, 4);
      last = sync::read_f32(e, e.replay(step, {&in_row, &in_at})[0]);
    }
    ok(last == std::vector<float>{2, -2, 4, -4, 6, -6, 0, 0}, "three replays appended rows 0-2 of the cache (doubled by the step)");
    int32_t past_end = 4;
    Tensor at_end = e.upload(DType::I32, Shape{1}, &past_end, 4);
    e.replay(step, {&row, &at_end});
    ok(fence_code(e) == code::kIndex, "a row past the end -> E_INDEX when it runs");
    ok(sync::read_f32(e, cache) == std::vector<float>{1, -1, 2, -2, 3, -3, 0, 0}, "and nothing was written");
    ok(code_of([&] { e.enqueue(Op::WriteRows, {&cache, &cache, &row}, {}); }) == code::kDType, "an f32 offset -> E_DTYPE");
    Tensor wide = e.upload(DType::F32, Shape{1, 1, 4}, xs, 16);
    int32_t zero = 0;
    Tensor at0 = e.upload(DType::I32, Shape{1}, &zero, 4);
    ok(code_of([&] { e.enqueue(Op::WriteRows, {&cache, &wide, &at0}, {}); }) == code::kShape, "rows of another width -> E_SHAPE");
    ok(code_of([&] { e.enqueue(Op::WriteRows, {&cache, &cache, &at0}, {}); }) == code::kArg, "writing a tensor into itself -> E_ARG");
  }

  // a draw can be recorded when its step is an operand (a counter the step advances on the engine):
  // each replay then draws what the attribute-step draw at that step does
  {
    auto read_i32 = [&](const Tensor& t) {
      int32_t v = -1;
      std::vector<float> raw = sync::read_f32(e, t);  // the 4 bytes of the i32
      std::memcpy(&v, raw.data(), 4);
      return v;
    };
    float lg[6] = {0.1f, 0.4f, 0.2f, 0.3f, 0.25f, 0.35f};
    Tensor logits = e.upload(DType::F32, Shape{1, 6}, lg, sizeof lg);
    OpAttrs sa;
    sa.temperature = 1.5f;
    sa.seed = 7;
    OpAttrs one;
    one.length = 1;
    int32_t zero = 0;
    Tensor at = e.upload(DType::I32, Shape{1}, &zero, 4);
    auto draw = e.record({logits, at}, [&](const std::vector<Tensor>& in) {
      Tensor id = e.enqueue(Op::Sample, {&in[0], &in[1]}, sa)[0];
      return std::vector<Tensor>{id, e.enqueue(Op::Advance, {&in[1], &id}, one)[0]};
    });
    bool same = true;
    std::vector<int32_t> drawn;
    for (uint64_t s = 0; s < 16; s++) {
      auto out = e.replay(draw, {&logits, &at});
      at = out[1];
      OpAttrs fixed = sa;
      fixed.offset = s;
      const int32_t got = read_i32(out[0]);
      same &= got == read_i32(e.enqueue(Op::Sample, {&logits}, fixed)[0]);
      drawn.push_back(got);
    }
    ok(same, "a recorded draw at the engine's step equals the draw with that step as an attribute");
    ok(std::count(drawn.begin(), drawn.end(), drawn[0]) < int(drawn.size()), "and draws anew at every replay");
    ok(read_i32(at) == 16, "the step counter advanced once per replay");
    Tensor f32_step = e.upload(DType::F32, Shape{1}, xs, 4);
    ok(code_of([&] { e.enqueue(Op::Sample, {&logits, &f32_step}, sa); }) == code::kDType, "an f32 step -> E_DTYPE");
  }

  // the memory plan on random op graphs: buffers alive at the same time never overlap
  {
    uint32_t rng = 12345;
    auto next = [&](uint32_t n) { rng = rng * 1664525u + 1013904223u; return (rng >> 8) % n; };
    bool disjoint = true, bounded = true;
    for (int trial = 0; trial < 200 && disjoint && bounded; trial++) {
      Program p;
      std::vector<std::shared_ptr<Buffer>> bufs = {std::make_shared<Buffer>()};  // [0]: a constant
      const int n_ops = 1 + int(next(40));
      for (int i = 0; i < n_ops; i++) {
        ProgramOp op;
        for (uint32_t r = 0, nr = 1 + next(3); r < nr; r++) op.reads.push_back(bufs[next(uint32_t(bufs.size()))].get());
        for (uint32_t w = 0, nw = 1 + next(2); w < nw; w++) {
          bufs.push_back(std::make_shared<Buffer>());
          op.writes.emplace_back(bufs.back().get(), size_t(1 + next(5000)));
        }
        p.ops.push_back(std::move(op));
      }
      Tensor out;
      out.buf = bufs.back();
      p.outputs = {out};
      p.plan_memory();
      // lifetimes as the plan defines them: from the writing op to the last reading op
      std::map<const Buffer*, std::pair<size_t, size_t>> life;
      for (size_t i = 0; i < p.ops.size(); i++) {
        for (auto& [b, bytes] : p.ops[i].writes) life[b] = {i, i};
        for (const Buffer* b : p.ops[i].reads)
          if (life.count(b)) life[b].second = i;
      }
      for (auto& a : p.placed) {
        bounded &= a.offset + a.bytes <= p.arena_bytes;
        for (auto& b : p.placed) {
          if (a.buf == b.buf) continue;
          const auto &la = life[a.buf], &lb = life[b.buf];
          const bool together = la.first <= lb.second && lb.first <= la.second;
          const bool overlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
          if (together && overlap) disjoint = false;
        }
      }
    }
    ok(disjoint && bounded, "memory plan: 200 random op graphs, no two live buffers share bytes, all inside the arena");
  }

  // dispose frees everything and refuses further work
  sync::dispose(e);
  ok(e.stats().bytes_in_use == 0, "dispose frees all memory");
  ok(code_of([&] { e.enqueue(Op::Add, {&x, &x}, {}); }) == code::kDisposed, "use after dispose -> E_DISPOSED");

  std::printf("1..%d\n# native: %d passed, %d failed\n", g_n, g_n - g_fail, g_fail);
  return g_fail ? 1 : 0;
}
