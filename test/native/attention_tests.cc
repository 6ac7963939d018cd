// The CPU attention's tiled path under both register tiles: 6 x 4 vectors (chosen where AVX-512 is)
// and 6 x 2 (AVX2 machines, e.g. CI's). Every output element is summed in the same order by both, so
// they must agree bit for bit; the Node suites (test/ops/attention-tiled.test.ts) check the values,
// but only with the tile this machine picks.
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_kernels.h"

using namespace latte;

namespace {

struct HostTensor {
  std::vector<float> data;
  Tensor t;
  HostTensor(Shape s, std::mt19937& rng) : data(size_t(s.numel())) {
    std::normal_distribution<float> n;
    for (auto& x : data) x = n(rng);
    t.shape = s;
    t.buf = std::make_shared<Buffer>();
    t.buf->data = data.data();
    t.buf->bytes = data.size() * sizeof(float);
  }
};

// out and logits of one call, with the tile of a CPU with (or without) AVX-512
std::vector<float> run(bool avx512, const AttentionArgs& base, HostTensor& out, HostTensor* logits) {
  cpu::Context ctx;
  ctx.features.avx512f = avx512;
  AttentionArgs a = base;
  a.out = &out.t;
  a.logits = logits ? &logits->t : nullptr;
  cpu::attention(ctx, a);
  std::vector<float> r = out.data;
  if (logits) r.insert(r.end(), logits->data.begin(), logits->data.end());
  return r;
}

}  // namespace

void attention_tests(const std::function<void(bool, const std::string&)>& ok) {
  std::mt19937 rng(7);
  struct Case {
    int64_t B, Sq, Skv, H, G, d;
    Mask mask;
    int64_t c0;  // image block (residual, gate and logits) from this key; Skv: none
  };
  const Case cases[] = {
      {1, 100, 100, 2, 2, 80, Mask::None, 100},   // vision-like: 32 + 32 + 16 wide
      {1, 61, 130, 4, 2, 56, Mask::Causal, 130},  // 32 + 16 + 8 wide, key blocks skipped
      {2, 50, 70, 2, 1, 128, Mask::None, 20},     // TCRA with logits
  };
  for (const Case& c : cases) {
    HostTensor q({c.B, c.Sq, c.H, c.d}, rng), k({c.B, c.Skv, c.G, c.d}, rng), v({c.B, c.Skv, c.G, c.d}, rng);
    HostTensor res({c.B, c.H, c.Sq, c.Skv - c.c0}, rng), gate({c.B, c.H}, rng);
    HostTensor out({c.B, c.Sq, c.H, c.d}, rng), logits({c.B, c.H, c.Sq, c.Skv - c.c0}, rng);
    AttentionArgs a{};
    a.q = &q.t, a.k = &k.t, a.v = &v.t;
    const bool image = c.c0 < c.Skv;
    a.residual = image ? &res.t : nullptr;
    a.gate = image ? &gate.t : nullptr;
    a.scale = 0.125f;
    a.mask = c.mask;
    a.image_col0 = c.c0;
    const auto wide = run(true, a, out, image ? &logits : nullptr);
    const auto narrow = run(false, a, out, image ? &logits : nullptr);
    bool finite = true;
    for (size_t i = 0; i < size_t(out.t.numel()); i++) finite = finite && std::isfinite(wide[i]);
    ok(finite && wide.size() == narrow.size() && std::memcmp(wide.data(), narrow.data(), wide.size() * sizeof(float)) == 0,
       "attention tiles 6x4 and 6x2 agree bit for bit (Sq " + std::to_string(c.Sq) + ", Skv " + std::to_string(c.Skv) + ", d " + std::to_string(c.d) + ")");
  }
}
