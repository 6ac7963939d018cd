import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine, cpuRoundsBf16Activations } from '../helpers/engine.ts';
import { assertClose, linearRef, maxAbs, maxAbsDiff, randn, roundBf16, toBf16Bits } from '../helpers/reference.ts';

// Sizes straddle the GEMM kernels' tiles and vector widths.
const CASES: [number, number, number][] = [
  [1, 31, 33],
  [1, 128, 129],
  [1, 1536 + 17, 8 * 4 + 3], // GEMV: chunk tail (k % 16) and a partial row block (n % 4)
  [31, 33, 32],
  [32, 127, 31],
  [33, 129, 128],
  [64, 96, 200],
];

test('linear f32 (plain and packed) matches float64 within the f32 baseline error', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  for (const [m, k, n] of CASES) {
    const x = randn(m * k, m * 7 + k);
    const w = randn(n * k, n * 13 + k);
    const b = randn(n, n);
    const ref = linearRef(x, w, b, m, k, n);
    // a naive float32 loop's own error: the engine may not be much worse than that
    const base = maxAbsDiff(linearRef(x, w, b, m, k, n, true), ref);
    const xt = e.tensor(x, [m, k]);
    const wt = e.tensor(w, [n, k]);
    const bt = e.tensor(b, [n]);
    const plain = await e.linear(xt, wt, bt).readFloat32();
    const packed = await e.linear(xt, e.packLinear(wt), bt).readFloat32();
    const nobias = await e.linear(xt, wt).readFloat32();
    const tol = Math.max(4 * base, 1e-6 * maxAbs(ref));
    t.true(maxAbsDiff(plain, ref) <= tol, `plain ${m}x${k}x${n}: ${maxAbsDiff(plain, ref)} > ${tol}`);
    t.true(maxAbsDiff(packed, ref) <= tol, `packed ${m}x${k}x${n}: ${maxAbsDiff(packed, ref)} > ${tol}`);
    assertClose(t, nobias, linearRef(x, w, null, m, k, n), 1e-5, `no bias ${m}x${k}x${n}`);
  }
});

test('linear with bf16 weights (packed bf16, raw bf16, M = 1 GEMV) equals the bf16-rounded f32 product', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  for (const [m, k, n] of CASES) {
    const x = randn(m * k, m + 3 * k);
    const w = randn(n * k, 5 * n + k);
    const b = randn(n, 2 * n);
    const wb = roundBf16(w);
    const ref = linearRef(x, wb, b, m, k, n);
    const xt = e.tensor(x, [m, k]);
    const w16 = e.tensor(Uint16Array.from(w, toBf16Bits), [n, k], 'bf16');
    const bt = e.tensor(b, [n]);
    const packed = await e.linear(xt, e.packLinear(e.tensor(w, [n, k]), 'bf16'), bt).readFloat32();
    const raw = await e.linear(xt, w16, bt).readFloat32();
    // the AMX / AVX512-BF16 path also rounds activations to bf16: allow bf16's relative precision then
    const info = e.backend;
    t.is(info.name, 'cpu');
    assertClose(t, raw, ref, 2e-5, `raw bf16 ${m}x${k}x${n}`);
    // without native bf16 kernels (and always at M = 1: our GEMV) activations stay f32, so the product is tight
    const tight = m === 1 || !cpuRoundsBf16Activations();
    assertClose(t, packed, ref, tight ? 2e-5 : 1e-2, `packed bf16 ${m}x${k}x${n}`);
  }
});

test('linear rejects mismatched operands synchronously with codes', (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const x = e.tensor(new Float32Array(6), [2, 3]);
  const w = e.tensor(new Float32Array(8), [2, 4]);
  const err = t.throws(() => e.linear(x, w), { instanceOf: LatteError });
  t.is(err?.code, 'E_SHAPE');
  const w2 = e.tensor(new Float32Array(6), [2, 3]);
  t.is(t.throws(() => e.linear(x, w2, e.tensor(new Float32Array(3), [3])), { instanceOf: LatteError })?.code, 'E_SHAPE');
  const ids = e.tensor(new Int32Array(6), [2, 3], 'i32');
  t.is(t.throws(() => e.linear(ids, w2), { instanceOf: LatteError })?.code, 'E_DTYPE');
  t.is(t.throws(() => e.packLinear(x, 'f16' as 'f32'), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => e.tensor(new Float32Array(5), [2, 3]), { instanceOf: LatteError })?.code, 'E_SHAPE');
});

test('a packed weight cannot be read back or viewed', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const p = e.packLinear(e.tensor(randn(12, 1), [3, 4]));
  t.is(t.throws(() => e.reshape(p, [12]), { instanceOf: LatteError })?.code, 'E_ARG');
  const err = await t.throwsAsync(() => p.read(), { instanceOf: LatteError });
  t.is(err?.code, 'E_ARG');
});
