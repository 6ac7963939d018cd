import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { assertClose, randn } from '../helpers/reference.ts';

function rmsRef(x: Float32Array, w: Float32Array | null, b: Float32Array | null, rows: number, n: number, eps: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < n; j++) ss += x[r * n + j] ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let j = 0; j < n; j++) y[r * n + j] = x[r * n + j] * inv * (w ? w[j] : 1) + (b ? b[j] : 0);
  }
  return y;
}

test('rms_norm over the last dim, with and without weight', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  for (const [rows, n] of [[1, 31], [3, 32], [5, 33], [2, 129]]) {
    const x = randn(rows * n, n, 3);
    const w = randn(n, n + 1);
    const xt = e.tensor(x, [rows, n]);
    assertClose(t, await e.rmsNorm(xt, e.tensor(w, [n]), { eps: 1e-6 }).readFloat32(), rmsRef(x, w, null, rows, n, 1e-6), 1e-6, `rms ${rows}x${n}`);
    assertClose(t, await e.rmsNorm(xt, null, { eps: 1e-5 }).readFloat32(), rmsRef(x, null, null, rows, n, 1e-5), 1e-6, `rms no weight ${rows}x${n}`);
  }
});

test('rms_norm over channels of NCHW with weight and bias (DC-AE RMSNorm2d)', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [N, C, H, W] = [2, 33, 3, 5];
  const x = randn(N * C * H * W, 9, 2);
  const w = randn(C, 10);
  const b = randn(C, 11);
  // reference: move channels last, normalise rows, move back
  const xl = new Float32Array(x.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) xl[(n * H * W + p) * C + c] = x[(n * C + c) * H * W + p];
  const yl = rmsRef(xl, w, b, N * H * W, C, 1e-5);
  const want = new Float64Array(x.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) want[(n * C + c) * H * W + p] = yl[(n * H * W + p) * C + c];
  const got = await e.rmsNorm(e.tensor(x, [N, C, H, W]), e.tensor(w, [C]), { eps: 1e-5, bias: e.tensor(b, [C]), channels: true }).readFloat32();
  assertClose(t, got, want, 1e-6, 'rms channels');
});

test('layer_norm and softmax', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  for (const [rows, n] of [[2, 31], [4, 128], [3, 129]]) {
    const x = randn(rows * n, 3 * n, 4);
    const w = randn(n, 5);
    const b = randn(n, 6);
    const ln = new Float64Array(rows * n);
    const sm = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * n, (r + 1) * n));
      const mean = row.reduce((a, v) => a + v, 0) / n;
      const v = row.reduce((a, u) => a + (u - mean) ** 2, 0) / n;
      const mx = Math.max(...row);
      const z = row.reduce((a, u) => a + Math.exp(u - mx), 0);
      for (let j = 0; j < n; j++) {
        ln[r * n + j] = ((row[j] - mean) / Math.sqrt(v + 1e-5)) * w[j] + b[j];
        sm[r * n + j] = Math.exp(row[j] - mx) / z;
      }
    }
    const xt = e.tensor(x, [rows, n]);
    assertClose(t, await e.layerNorm(xt, e.tensor(w, [n]), e.tensor(b, [n]), 1e-5).readFloat32(), ln, 2e-6, `ln ${rows}x${n}`);
    assertClose(t, await e.softmax(xt).readFloat32(), sm, 2e-6, `softmax ${rows}x${n}`);
  }
});

test('norms reject bad weights and eps with codes', (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const x = e.tensor(new Float32Array(12), [3, 4]);
  t.is(t.throws(() => e.rmsNorm(x, e.tensor(new Float32Array(3), [3])), { instanceOf: LatteError })?.code, 'E_SHAPE');
  t.is(t.throws(() => e.rmsNorm(x, null, { eps: -1 }), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => e.rmsNorm(x, null, { eps: Number.NaN }), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => e.rmsNorm(x, null, { channels: true, bias: e.tensor(new Float32Array(3), [3]) }), { instanceOf: LatteError })?.code, 'E_SHAPE');
});
