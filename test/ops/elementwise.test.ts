import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { assertClose, fromBf16Bits, randn, silu, toBf16Bits } from '../helpers/reference.ts';

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for 1e-6; use a series/continued fraction split
  const t = Math.abs(x);
  let r: number;
  if (t < 2.5) {
    let sum = t, term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc continued fraction
    let f = 0;
    for (let n = 60; n >= 1; n--) f = (n / 2) / (t + f);
    r = 1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  }
  return x < 0 ? -r : r;
}

test('unary activations: silu, relu, tanh, gelu quick / tanh / erf', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const n = 1031;
  const x = randn(n, 1, 6);
  const xt = e.tensor(x, [n]);
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const cases: [string, Float32Array | Promise<Float32Array>, (v: number) => number][] = [
    ['silu', e.silu(xt).readFloat32(), silu],
    ['relu', e.relu(xt).readFloat32(), (v) => Math.max(v, 0)],
    ['tanh', e.tanh(xt).readFloat32(), Math.tanh],
    ['gelu quick', e.gelu(xt, 'quick').readFloat32(), (v) => v * sig(1.702 * v)],
    ['gelu tanh', e.gelu(xt, 'tanh').readFloat32(), (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))],
    ['gelu erf', e.gelu(xt, 'erf').readFloat32(), (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))],
  ];
  for (const [name, got, f] of cases) assertClose(t, await got, Array.from(x, f), 1e-6, name);
  t.is(t.throws(() => e.gelu(xt, 'fast' as 'tanh'), { instanceOf: LatteError })?.code, 'E_ARG');
});

test('add / mul broadcast the second operand over leading dims', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const a = randn(3 * 4 * 33, 2);
  const b = randn(4 * 33, 3);
  const at = e.tensor(a, [3, 4, 33]);
  const bt = e.tensor(b, [4, 33]);
  assertClose(t, await e.add(at, bt).readFloat32(), Array.from(a, (v, i) => v + b[i % b.length]), 1e-7, 'add');
  assertClose(t, await e.mul(at, bt).readFloat32(), Array.from(a, (v, i) => v * b[i % b.length]), 1e-7, 'mul');
  assertClose(t, await e.add(at, at).readFloat32(), Array.from(a, (v) => 2 * v), 1e-7, 'same shape');
  t.is(t.throws(() => e.add(at, e.tensor(new Float32Array(4), [4])), { instanceOf: LatteError })?.code, 'E_SHAPE');
});

test('swiglu, modulate and gated_add', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [B, S, D] = [2, 5, 33];
  const x = randn(B * S * D, 4);
  const y = randn(B * S * D, 5);
  const s1 = randn(B * D, 6);
  const s2 = randn(B * D, 7);
  const xt = e.tensor(x, [B, S, D]);
  const yt = e.tensor(y, [B, S, D]);
  const at = e.tensor(s1, [B, D]);
  const bt = e.tensor(s2, [B, D]);
  const per = (i: number) => Math.floor(i / (S * D)) * D + (i % D);
  assertClose(t, await e.swiglu(xt, yt).readFloat32(), Array.from(x, (v, i) => silu(v) * y[i]), 1e-6, 'swiglu');
  assertClose(t, await e.modulate(xt, at, bt).readFloat32(), Array.from(x, (v, i) => v * (1 + s2[per(i)]) + s1[per(i)]), 1e-6, 'modulate');
  assertClose(t, await e.gatedAdd(xt, at, yt).readFloat32(), Array.from(x, (v, i) => v + s1[per(i)] * y[i]), 1e-6, 'gated_add');
  t.is(t.throws(() => e.modulate(xt, e.tensor(s1, [D, B]), bt), { instanceOf: LatteError })?.code, 'E_SHAPE');
});

test('convert f32 <-> bf16 / f16 rounds like PyTorch', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const x = new Float32Array([0, -0, 1, -1.5, 3.14159, 1e-8, 65504, 70000, 1 / 3, 2.0009765625, Infinity, -Infinity]);
  const xt = e.tensor(x, [x.length]);
  const bf = (await e.convert(xt, 'bf16').read()) as Uint16Array;
  t.deepEqual(Array.from(bf), Array.from(x, toBf16Bits));
  const back = await e.convert(e.convert(xt, 'bf16'), 'f32').readFloat32();
  t.deepEqual(Array.from(back), Array.from(x, (v) => fromBf16Bits(toBf16Bits(v))));
  // half: reference bit patterns (numpy float16)
  const h = (await e.convert(xt, 'f16').read()) as Uint16Array;
  t.deepEqual(Array.from(h), [0x0000, 0x8000, 0x3c00, 0xbe00, 0x4248, 0x0000, 0x7bff, 0x7c00, 0x3555, 0x4000, 0x7c00, 0xfc00]);
  const h2 = await e.convert(e.convert(xt, 'f16'), 'f32').readFloat32();
  t.is(h2[2], 1);
  t.is(h2[4], 3.140625);
  t.is(t.throws(() => e.convert(xt, 'i32'), { instanceOf: LatteError })?.code, 'E_ARG');
});

test('permute reorders dimensions like torch.permute, for any dtype', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const [B, C, H, W] = [2, 3, 4, 5];
  const x = Float32Array.from({ length: B * C * H * W }, (_, i) => i);
  const got = await e.permute(e.tensor(x, [B, C, H, W]), [0, 2, 3, 1]).readFloat32(); // latent -> tokens
  const want: number[] = [];
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++) want.push(x[((b * C + c) * H + h) * W + w]);
  t.deepEqual(Array.from(got), want);
  const ids = await e.permute(e.tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], 'i32'), [1, 0]).read();
  t.deepEqual(Array.from(ids), [1, 4, 2, 5, 3, 6]);
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => e.permute(e.tensor(x, [B, C, H, W]), [0, 1, 2])), 'E_ARG');
  t.is(code(() => e.permute(e.tensor(x, [B, C, H, W]), [0, 1, 1, 2])), 'E_ARG');
});

test('concat joins along any axis and checks the other dims', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const a = randn(2 * 3 * 4, 1);
  const b = randn(2 * 5 * 4, 2);
  const got = await e.concat(e.tensor(a, [2, 3, 4]), e.tensor(b, [2, 5, 4]), 1).readFloat32();
  const want: number[] = [];
  for (let i = 0; i < 2; i++) want.push(...a.subarray(i * 12, (i + 1) * 12), ...b.subarray(i * 20, (i + 1) * 20));
  t.deepEqual(Array.from(got), want);
  const last = await e.concat(e.tensor(a, [6, 4]), e.tensor(a, [6, 4]), -1).readFloat32();
  t.is(last.length, 48);
  t.is(last[4], a[0]);
  t.is(t.throws(() => e.concat(e.tensor(a, [2, 3, 4]), e.tensor(b, [2, 5, 4]), 2), { instanceOf: LatteError })?.code, 'E_SHAPE');
});

test('slice copies rows [start, start + length) of any axis, any dtype, and checks its range', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const [A, B, C] = [3, 7, 5];
  const x = randn(A * B * C, 3);
  const got = await e.slice(e.tensor(x, [A, B, C]), 1, 2, 4).readFloat32();
  const want: number[] = [];
  for (let a = 0; a < A; a++) for (let b = 2; b < 6; b++) for (let c = 0; c < C; c++) want.push(x[(a * B + b) * C + c]);
  t.deepEqual(Array.from(got), want);
  const ids = Int32Array.from({ length: 12 }, (_, i) => i);
  t.deepEqual(Array.from((await e.slice(e.tensor(ids, [3, 4], 'i32'), -1, 3, 1).read()) as Int32Array), [3, 7, 11]);
  t.deepEqual(Array.from(await e.slice(e.tensor(Float32Array.from(ids), [12]), 0, 0, 12).readFloat32()), Array.from(ids));
  for (const [axis, start, length] of [[1, 5, 3], [1, -1, 2], [1, 0, 0], [3, 0, 1]])
    t.is(t.throws(() => e.slice(e.tensor(x, [A, B, C]), axis, start, length), { instanceOf: LatteError })?.code, 'E_ARG');
});

test('axpby: alpha a + beta b, shapes checked', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const [a, b] = [randn(1000, 11), randn(1000, 12)];
  const got = await e.axpby(0.25, e.tensor(a, [10, 100]), -1.5, e.tensor(b, [10, 100])).readFloat32();
  assertClose(t, got, a.map((x, i) => 0.25 * x - 1.5 * b[i]), 1e-6, 'axpby');
  t.is(t.throws(() => e.axpby(1, e.tensor(a, [10, 100]), 1, e.tensor(b, [100, 10])), { instanceOf: LatteError })?.code, 'E_SHAPE');
  t.is(t.throws(() => e.axpby(NaN, e.tensor(a, [10, 100]), 1, e.tensor(b, [10, 100])), { instanceOf: LatteError })?.code, 'E_ARG');
});

/** DC-AE's ReLU linear attention, from its definition (float64). */
function reluLinearAttentionRef(qkv: Float32Array, B: number, heads: number, d: number, N: number, eps: number): Float64Array {
  const out = new Float64Array(B * heads * d * N);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++) {
      const base = (b * heads + h) * 3 * d * N;
      const q = (j: number, n: number) => Math.max(qkv[base + j * N + n], 0);
      const k = (j: number, n: number) => Math.max(qkv[base + (d + j) * N + n], 0);
      const v = (i: number, n: number) => qkv[base + (2 * d + i) * N + n];
      const o = (i: number, n: number, x: number) => (out[((b * heads + h) * d + i) * N + n] = x);
      for (let n = 0; n < N; n++) {
        if (N > d) {
          // o = ([v; 1] k^T) q, normalised by its last row
          let den = 0;
          for (let m = 0; m < N; m++) for (let j = 0; j < d; j++) den += k(j, m) * q(j, n);
          for (let i = 0; i < d; i++) {
            let num = 0;
            for (let m = 0; m < N; m++) for (let j = 0; j < d; j++) num += v(i, m) * k(j, m) * q(j, n);
            o(i, n, num / (den + eps));
          }
        } else {
          const s = Array.from({ length: N }, (_, m) => Array.from({ length: d }, (_, j) => k(j, m) * q(j, n)).reduce((x, y) => x + y, 0));
          const col = s.reduce((x, y) => x + y, 0);
          for (let i = 0; i < d; i++) o(i, n, s.reduce((acc, sm, m) => acc + v(i, m) * (sm / (col + eps)), 0));
        }
      }
    }
  return out;
}

test('relu_linear_attention matches its definition (linear form N > d and the quadratic form N <= d)', async (t) => {
  const e = cpuEngine(2);
  t.teardown(() => e.dispose());
  for (const [B, heads, d, H, W] of [[2, 3, 4, 3, 5], [1, 2, 8, 2, 2], [1, 1, 8, 5, 7]]) {
    const x = randn(B * heads * 3 * d * H * W, B + d + H);
    const got = await e.reluLinearAttention(e.tensor(x, [B, heads * 3 * d, H, W]), d).readFloat32();
    assertClose(t, got, reluLinearAttentionRef(x, B, heads, d, H * W, 1e-15), 1e-5, `B${B} h${heads} d${d} ${H}x${W}`);
  }
  t.is(t.throws(() => e.reluLinearAttention(e.tensor(randn(2 * 10 * 4, 1), [2, 10, 2, 2]), 4), { instanceOf: LatteError })?.code, 'E_ARG');
});

test('zeros gives an f32 tensor of zeros; advance adds n to an i32 [1] once `after` has run', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const z = e.zeros([3, 5]);
  t.deepEqual(z.shape, [3, 5]);
  t.deepEqual([...(await z.readFloat32())], new Array(15).fill(0));
  const at = e.tensor(new Int32Array([41]), [1], 'i32');
  const next = e.advance(at, at, 1);
  const again = e.advance(next, next, 7);
  t.deepEqual([...((await again.read()) as Int32Array)], [49]);
  t.deepEqual([...((await next.read()) as Int32Array)], [42]);
  t.throws(() => e.zeros([]), { instanceOf: LatteError, message: /shape is required/ });
  t.throws(() => e.advance(e.tensor(new Float32Array([1]), [1]), at, 1), { instanceOf: LatteError, message: /advance/ });
  t.throws(() => e.advance(at, at, -1), { instanceOf: LatteError, message: /\[0, 2\^31\)/ });
});
