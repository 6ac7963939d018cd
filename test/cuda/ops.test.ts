// Every other op of the op layer on CUDA against the CPU backend, at straddling sizes. Where both
// backends compute in f32 with the same formulas (pointwise ops, norms with float64 statistics,
// RoPE with the host's inverse frequencies) the tolerance is a few f32 ulps of the result's scale;
// data movement, conversions and token choice must be bit-identical; convolution is checked against
// float64 with the CPU's error as the baseline. Skipped without a usable CUDA device.
import { LatteError, type Engine, type Tensor } from '../../lib/index.ts';
import { assertBaseline, assertSame, cudaTest, Pair } from '../helpers/cuda.ts';
import { conv2dRef } from '../helpers/naive-ops.ts';
import { assertClose, randn, toBf16Bits } from '../helpers/reference.ts';

const ULPS = 4e-6; // relative to max |want|: a few f32 ulps

cudaTest('pointwise ops: silu, relu, tanh, gelu (3 modes), add/mul broadcast, axpby, swiglu, modulate, gated_add', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  for (const n of [1, 31, 4099]) {
    const x = randn(n, n, 6);
    const y = randn(n, n + 1, 2);
    const close = async (label: string, f: (e: Engine) => Tensor) => {
      const [a, b] = await p.run(f);
      assertClose(t, b, a, ULPS, `${label} n=${n}`, 1e-30);
    };
    await close('silu', (e) => e.silu(e.tensor(x, [n])));
    await close('relu', (e) => e.relu(e.tensor(x, [n])));
    await close('tanh', (e) => e.tanh(e.tensor(x, [n])));
    for (const m of ['quick', 'tanh', 'erf'] as const) await close(`gelu ${m}`, (e) => e.gelu(e.tensor(x, [n]), m));
    await close('axpby', (e) => e.axpby(0.3, e.tensor(x, [n]), -1.7, e.tensor(y, [n])));
    await close('swiglu', (e) => e.swiglu(e.tensor(x, [n]), e.tensor(y, [n])));
  }
  const [A, B, C] = [3, 5, 7];
  const a = randn(A * B * C, 1);
  const b2 = randn(B * C, 2);
  const b1 = randn(C, 3);
  for (const [label, bb, shape] of [['[B,C]', b2, [B, C]], ['[C]', b1, [C]]] as const) {
    const [x1, y1] = await p.run((e) => e.add(e.tensor(a, [A, B, C]), e.tensor(bb, [...shape])));
    assertSame(t, y1, x1, `add broadcast ${label}`);
    const [x2, y2] = await p.run((e) => e.mul(e.tensor(a, [A, B, C]), e.tensor(bb, [...shape])));
    assertSame(t, y2, x2, `mul broadcast ${label}`);
  }
  const [Bm, S, D] = [2, 9, 33];
  const h = randn(Bm * S * D, 4);
  const g = randn(Bm * D, 5);
  const s = randn(Bm * D, 6);
  const [m1, m2] = await p.run((e) => e.modulate(e.tensor(h, [Bm, S, D]), e.tensor(g, [Bm, D]), e.tensor(s, [Bm, D])));
  assertClose(t, m2, m1, ULPS, 'modulate');
  const [g1, g2] = await p.run((e) => e.gatedAdd(e.tensor(h, [Bm, S, D]), e.tensor(g, [Bm, D]), e.tensor(randn(Bm * S * D, 7), [Bm, S, D])));
  assertClose(t, g2, g1, ULPS, 'gated_add');
});

cudaTest('norms and softmax: rms (rows, channels, weight/bias), layer_norm, softmax at odd widths', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  for (const [rows, n] of [[1, 1], [3, 31], [33, 257], [2, 4099]]) {
    const x = randn(rows * n, rows + n, 3);
    const w = randn(n, n);
    const b = randn(n, n + 1);
    const [r1, r2] = await p.run((e) => e.rmsNorm(e.tensor(x, [rows, n]), e.tensor(w, [n]), { eps: 1e-6 }));
    assertClose(t, r2, r1, ULPS, `rms ${rows}x${n}`);
    const [q1, q2] = await p.run((e) => e.rmsNorm(e.tensor(x, [rows, n]), null, { eps: 1e-5, bias: e.tensor(b, [n]) }));
    assertClose(t, q2, q1, ULPS, `rms no weight, bias ${rows}x${n}`);
    const [l1, l2] = await p.run((e) => e.layerNorm(e.tensor(x, [rows, n]), e.tensor(w, [n]), e.tensor(b, [n]), 1e-5));
    assertClose(t, l2, l1, ULPS, `layer_norm ${rows}x${n}`);
    const [s1, s2] = await p.run((e) => e.softmax(e.tensor(x.map((v) => v * 10), [rows, n])));
    assertClose(t, s2, s1, ULPS, `softmax ${rows}x${n}`);
  }
  const [N, C, H, W] = [2, 33, 3, 5];
  const x = randn(N * C * H * W, 9, 2);
  const [c1, c2] = await p.run((e) => e.rmsNorm(e.tensor(x, [N, C, H, W]), e.tensor(randn(C, 10), [C]), { eps: 1e-5, bias: e.tensor(randn(C, 11), [C]), channels: true }));
  assertClose(t, c2, c1, ULPS, 'rms channels');
});

cudaTest('rope: 1-D at large positions, M-RoPE sections, the vision 2-D restart form', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const cases = [
    { B: 2, S: 7, H: 3, d: 64, axes: 1, opts: { theta: 1e6 } },
    { B: 1, S: 9, H: 2, d: 128, axes: 3, opts: { theta: 1e6, sections: [16, 24, 24] } },
    { B: 1, S: 13, H: 4, d: 80, axes: 2, opts: { theta: 1e4, sections: [20, 20], restart: true } },
  ];
  for (const c of cases) {
    const x = randn(c.B * c.S * c.H * c.d, c.d);
    const pos = Int32Array.from({ length: c.axes * c.B * c.S }, (_, i) => (i * 37) % 3000);
    const [a, b] = await p.run((e) => e.rope(e.tensor(x, [c.B, c.S, c.H, c.d]), e.tensor(pos, [c.axes, c.B, c.S], 'i32'), c.opts));
    assertClose(t, b, a, ULPS, `rope ${JSON.stringify(c)}`);
  }
});

cudaTest('convert: f32 <-> bf16 <-> f16 bit-identical to the CPU (rounding ties, subnormals, inf, NaN)', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const special = [0, -0, 1, -1, 1.5, 65504, 65519, 65520, 1e-8, 6e-5, 6.1e-5, 5.96e-8, 2.98e-8, 3e38, -3e38, Infinity, -Infinity, NaN, 1.00390625, 1.01171875, 2049, 2051, 1 / 3];
  const x = Float32Array.from([...special, ...randn(997, 1, 100)]);
  const n = x.length;
  for (const to of ['bf16', 'f16'] as const) {
    const [a, b] = await p.raw((e) => e.convert(e.tensor(x, [n]), to));
    assertSame(t, b, a, `f32 -> ${to}`);
    const back = (e: Engine) => e.convert(e.convert(e.tensor(x, [n]), to), 'f32');
    const [c, d] = await p.raw(back);
    assertSame(t, d, c, `${to} -> f32`);
    const other = to === 'bf16' ? 'f16' : 'bf16';
    const [f, g] = await p.raw((e) => e.convert(e.convert(e.tensor(x, [n]), to), other));
    assertSame(t, g, f, `${to} -> ${other}`);
  }
});

cudaTest('data movement: concat, slice, permute (f32 and bf16, odd widths) bit-identical', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const shapes = [[3, 5, 7], [2, 1, 9, 3], [4, 33]];
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const s of shapes) {
      const n = s.reduce((a, b) => a * b);
      const data = randn(n, n);
      const mk = (e: Engine, d: Float32Array, shape: number[]) => (dtype === 'f32' ? e.tensor(d, shape) : e.tensor(Uint16Array.from(d, toBf16Bits), shape, 'bf16'));
      for (let axis = 0; axis < s.length; axis++) {
        const s2 = [...s];
        s2[axis] += 2;
        const other = randn(s2.reduce((a, b) => a * b), 7 * axis + 1);
        const [a, b] = await p.raw((e) => e.concat(mk(e, data, s), mk(e, other, s2), axis));
        assertSame(t, b, a, `concat ${dtype} ${s} axis ${axis}`);
        if (s[axis] > 1) {
          const [c, d] = await p.raw((e) => e.slice(mk(e, data, s), axis, 1, s[axis] - 1));
          assertSame(t, d, c, `slice ${dtype} ${s} axis ${axis}`);
        }
      }
      const perm = s.map((_, i) => s.length - 1 - i);
      const [c, d] = await p.raw((e) => e.permute(mk(e, data, s), perm));
      assertSame(t, d, c, `permute ${dtype} ${s}`);
    }
  }
  // the generator's patchify / unpatchify permutes (6-D)
  const x = randn(2 * 4 * 6 * 6, 3);
  const v6 = [2, 4, 3, 2, 3, 2];
  for (const perm of [[0, 2, 4, 1, 3, 5], [0, 3, 1, 4, 2, 5]]) {
    const [a, b] = await p.raw((e) => e.permute(e.tensor(x, v6), perm));
    assertSame(t, b, a, `permute 6-D ${perm}`);
  }
});

cudaTest('embedding: f32 / bf16 / f16 tables; an id out of range surfaces as E_INDEX at the next read, then the engine goes on', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const [V, D] = [11, 33];
  const table = randn(V * D, 4);
  const ids = Int32Array.from([3, 0, 10, 3, 7]);
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    const mk = (e: Engine) => (dtype === 'f32' ? e.tensor(table, [V, D]) : e.convert(e.tensor(table, [V, D]), dtype));
    const [a, b] = await p.run((e) => e.embedding(mk(e), e.tensor(ids, [5], 'i32')));
    assertSame(t, b, a, `embedding ${dtype}`);
  }
  const e = p.cuda;
  const bad = e.embedding(e.tensor(table, [V, D]), e.tensor(Int32Array.from([1, 11, -2]), [3], 'i32'));
  const err = await t.throwsAsync(() => bad.read(), { instanceOf: LatteError });
  t.is(err?.code, 'E_INDEX');
  t.regex(err?.message ?? '', /id 11 at position 1/);
  const good = await e.embedding(e.tensor(table, [V, D]), e.tensor(ids, [5], 'i32')).readFloat32();
  t.is(good[0], table[3 * D]);
});

cudaTest('noise: the counter RNG on the device gives the CPU values (at most 1 ulp apart, almost all identical)', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  for (const [shape, seed, offset] of [[[3, 1000], 42, 7], [[1, 32, 8, 8], 12345678901, 0]] as const) {
    const [a, b] = await p.run((e) => e.noise([...shape], seed, offset));
    let differ = 0;
    for (let i = 0; i < a.length; i++) {
      if (a[i] === b[i]) continue;
      differ++;
      t.true(Math.abs(a[i] - b[i]) <= Math.abs(a[i]) * 2 ** -23, `noise ${i}: ${b[i]} vs ${a[i]}`);
    }
    t.true(differ <= Math.max(2, a.length * 1e-4), `${differ} of ${a.length} noise values differ`);
  }
});

cudaTest('sample: greedy on the device and seeded sampling (temperature, top-k, top-p) give the CPU tokens', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const V = 1000;
  const rows = randn(4 * V, 77, 5);
  rows[V + 17] = rows[V + 900] = 50; // a tie: the lower id wins
  rows[2 * V] = NaN; // NaN first: max_element returns 0
  for (let i = 3 * V; i < 4 * V; i++) rows[i] = -Infinity; // all -inf: 0
  const opts = [{}, { temperature: 0.7, topK: 50, topP: 0.9, seed: 3, step: 0 }, { temperature: 1.3, seed: 11, step: 5 }, { temperature: 0.5, topP: 0.5, seed: 1, step: 2 }];
  for (const o of opts) {
    const rowsUsed = 'temperature' in o ? 2 : 4; // sampled rows need finite logits
    const data = rows.subarray(0, rowsUsed * V);
    const [a, b] = await p.raw((e) => e.sample(e.tensor(data, [rowsUsed, V]), o));
    assertSame(t, b, a, `sample ${JSON.stringify(o)}`);
  }
});

cudaTest('conv2d (3x3, 1x1, strided, grouped, depthwise, 8-channel blocks), pixel_shuffle, upsample_nearest', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const cases = [
    { x: [1, 3, 9, 7], w: [5, 3, 3, 3], stride: 1, pad: 1, groups: 1, bias: true },
    { x: [2, 33, 4, 4], w: [17, 33, 1, 1], stride: 1, pad: 0, groups: 1, bias: true },
    { x: [1, 4, 9, 9], w: [6, 4, 3, 3], stride: 2, pad: 1, groups: 1, bias: false },
    { x: [1, 8, 5, 6], w: [4, 4, 3, 3], stride: 1, pad: 1, groups: 2, bias: true },
    { x: [2, 12, 7, 5], w: [12, 1, 5, 5], stride: 1, pad: 2, groups: 12, bias: true },
    { x: [1, 16, 23, 17], w: [24, 16, 3, 3], stride: 1, pad: 1, groups: 1, bias: true }, // 8-channel blocks, > 256 pixels
    { x: [1, 16, 6, 6], w: [16, 8, 3, 3], stride: 1, pad: 0, groups: 2, bias: false }, // grouped, 8 per group
  ];
  let seed = 1;
  for (const c of cases) {
    const x = randn(c.x.reduce((a, b) => a * b), seed++);
    const w = randn(c.w.reduce((a, b) => a * b), seed++);
    const b = c.bias ? randn(c.w[0], seed++) : null;
    const want = conv2dRef(x, w, b, c.x, c.w, c.stride, c.pad, c.groups).y;
    const [cpu, cuda] = await p.run((e) => e.conv2d(e.tensor(x, c.x), e.tensor(w, c.w), b ? e.tensor(b, [c.w[0]]) : null, { stride: c.stride, padding: c.pad, groups: c.groups }));
    assertBaseline(t, cuda, cpu, want, `conv2d ${JSON.stringify(c)}`);
  }
  const x = Float32Array.from({ length: 2 * 12 * 3 * 5 }, (_, i) => i);
  const [a, b] = await p.run((e) => e.pixelShuffle(e.tensor(x, [2, 12, 3, 5]), 2));
  assertSame(t, b, a, 'pixel_shuffle');
  const [c, d] = await p.run((e) => e.upsampleNearest(e.tensor(x, [2, 12, 3, 5]), 3));
  assertSame(t, d, c, 'upsample_nearest');
});

cudaTest('relu_linear_attention: the linear (N > d) and quadratic (N <= d) forms', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  for (const [B, heads, d, H, W] of [[2, 2, 8, 4, 5], [1, 3, 16, 3, 3], [1, 1, 32, 16, 16]]) {
    const qkv = randn(B * heads * 3 * d * H * W, d + H);
    const [a, b] = await p.run((e) => e.reluLinearAttention(e.tensor(qkv, [B, heads * 3 * d, H, W]), d));
    assertClose(t, b, a, 1e-6, `relu linear attention ${[B, heads, d, H, W]}`);
  }
});

cudaTest('zeros and advance: the device gives the CPU values (a chain of advances read once)', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const [z1, z2] = await p.run((e) => e.zeros([7, 129]));
  assertSame(t, z2, z1, 'zeros');
  const chain = (e: Engine) => {
    let at = e.tensor(new Int32Array([5]), [1], 'i32');
    for (let i = 0; i < 10; i++) at = e.advance(at, at, i);
    return at;
  };
  const [a1, a2] = await p.raw(chain);
  t.deepEqual(Array.from(a2), Array.from(a1));
  t.deepEqual(Array.from(a1), [50]);
});
