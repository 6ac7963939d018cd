// 8-bit weights (packLinear(w, 'q8'), native/core/quant.h) against the format's own reference
// (test/helpers/q8-reference.ts): the weights are the reference's q * d exactly, and the products
// stay within bounds derived from what each path rounds: the int8 GEMV (up to 32 rows) quantises x
// per block of 32; the many-row path (q * d into oneDNN's matmul) rounds W and x to bf16 where
// oneDNN has native bf16 kernels (as bf16 weights compute), else only sums in f32.
import test from 'ava';
import { GenerationStream, LatteError, Qwen2VL } from '../../lib/index.ts';
import { cpuEngine, cpuRoundsBf16Activations } from '../helpers/engine.ts';
import { absProduct, dequantiseQ8, q8ActivationBound } from '../helpers/q8-reference.ts';
import { linearRef, randn, toBf16Bits } from '../helpers/reference.ts';

// [M, K, N]: K not a multiple of 32 or 64 (padded tail blocks), N not a multiple of 4 (padded row
// groups), the GEMV's row limit (32, native/cpu/linear.cc) and the many-row path beyond it
const Q8_GEMV_ROWS = 32;
const CASES: [number, number, number][] = [
  [1, 31, 33],
  [1, 64, 4],
  [1, 1536 + 17, 35],
  [2, 33, 17],
  [8, 96, 200],
  [9, 75, 33],
  [32, 70, 40],
  [33, 129, 128],
  [64, 96, 200],
];

function worstOver(got: ArrayLike<number>, ref: ArrayLike<number>, bound: (i: number) => number): { ratio: number; at: number } {
  let ratio = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const r = Math.abs(got[i] - ref[i]) / bound(i);
    if (!(r <= ratio)) [ratio, at] = [r, i];
  }
  return { ratio, at };
}

test('q8 linear equals x . (q d) within the bound of what each path rounds', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  let seed = 11;
  for (const [m, k, n] of CASES) {
    const x = randn(m * k, seed++);
    const w = randn(n * k, seed++, 0.3);
    const b = randn(n, seed++);
    const wq = dequantiseQ8(w, n, k);
    const ref = linearRef(x, wq, b, m, k, n);
    const abs = absProduct(x, wq, m, k, n);
    const y = await e.linear(e.tensor(x, [m, k]), e.packLinear(e.tensor(w, [n, k]), 'q8'), e.tensor(b, [n])).readFloat32();
    const f32 = (i: number) => 1e-5 * abs[i] + 1e-6;
    let bound: (i: number) => number;
    if (m <= Q8_GEMV_ROWS) {
      const act = q8ActivationBound(x, wq, m, k, n);
      bound = (i) => act[i] * 1.001 + f32(i);
    } else {
      bound = cpuRoundsBf16Activations() ? (i) => 2 ** -8 * 1.01 * abs[i] + f32(i) : f32;
    }
    const { ratio, at } = worstOver(y, ref, bound);
    t.true(ratio <= 1, `${m}x${k}x${n}: |y - ref| = ${Math.abs(y[at] - ref[at])} at ${at} is ${ratio.toFixed(2)} x its bound`);
  }
});

test('q8 packing is exact for weights already on the grid, from f32, bf16 and f16 sources', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [n, k] = [13, 100];
  // q * 2^-7 with q in [-127, 127] and +-127 in every block (so d = 2^-7 exactly): exact in bf16
  // and f16 too. x on its own grid (qx * 2^-6, 127 per block), so the GEMV's x quantisation is exact.
  const grid = (rows: number, seed: number, step: number) => {
    const v = randn(rows * k, seed).map((u) => Math.round(u * 127) * step);
    for (let r = 0; r < rows; r++) for (let c = 0; c < k; c += 32) v[r * k + c] = (r + c / 32) % 2 ? 127 * step : -127 * step;
    return v;
  };
  const w = grid(n, 3, 2 ** -7);
  const back = dequantiseQ8(w, n, k);
  t.true(back.every((v, i) => v === w[i]), 'the reference keeps grid weights');
  for (const m of [1, 3, 12]) {
    const x = grid(m, 4 + m, 2 ** -6);
    const ref = linearRef(x, w, null, m, k, n);
    const xt = e.tensor(x, [m, k]);
    const sources = {
      f32: e.tensor(w, [n, k]),
      bf16: e.tensor(Uint16Array.from(w, toBf16Bits), [n, k], 'bf16'),
      f16: e.tensor(Uint16Array.from(w, (v) => f16Bits(v)), [n, k], 'f16'),
    };
    for (const [name, src] of Object.entries(sources)) {
      const y = await e.linear(xt, e.packLinear(src, 'q8')).readFloat32();
      const { ratio, at } = worstOver(y, ref, () => 1e-6 * 127 * 127 * 2 ** -13 * k);
      t.true(ratio <= 1, `${name} source, ${m} rows: ${y[at]} vs ${ref[at]}`);
    }
  }
});

test('a q8 weight holds 1.0625 bytes a weight (plus padding) and replaces its source', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const [n, k] = [256, 1024];
  const before = e.stats().bytesInUse;
  const src = e.tensor(randn(n * k, 9), [n, k]);
  const q = e.packLinear(src, 'q8');
  src.dispose();
  await e.fence();
  t.is(e.stats().bytesInUse - before, n * k + (n * k / 32) * 2);
  t.is(q.dtype, 'q8');
  t.deepEqual(q.shape, [n, k]);
  q.dispose();
  await e.fence();
  t.is(e.stats().bytesInUse, before);
});

test('q8 is refused where it does not belong, with codes', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const x = e.tensor(randn(8, 1), [2, 4]);
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => e.packLinear(x, 'q4' as 'q8')), 'E_DTYPE');
  t.is(code(() => e.tensor(new Float32Array(8), [2, 4], 'q8' as 'f32')), 'E_DTYPE');
  t.is(code(() => e.convert(x, 'q8' as 'f32')), 'E_ARG');
  const q = e.packLinear(x, 'q8');
  t.is(code(() => e.reshape(q, [8])), 'E_ARG');
  t.is((await t.throwsAsync(() => q.read(), { instanceOf: LatteError }))?.code, 'E_ARG');
  t.is(code(() => e.linear(e.tensor(randn(6, 2), [2, 3]), q)), 'E_SHAPE');
  await t.throwsAsync(Qwen2VL.load('models/shapes/vlm', { weights: 'q4' as 'q8' }), { code: 'E_ARG', message: /'f32', 'bf16' or 'q8'/ });
  t.is(code(() => GenerationStream.load('models/shapes/generator', e, 'int8' as 'q8')), 'E_ARG');
});

/** IEEE half bits of a value exactly representable in f16 (normal range or zero). */
function f16Bits(v: number): number {
  if (v === 0) return 0;
  const s = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  return s | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}
