// CUDA linear vs the float64 definition, with tolerances from an f32 baseline (a float32 loop over
// the same operands). Sizes straddle the kernels' tiles: the GEMV (M <= 8, vector and scalar
// paths), the SIMT f32 GEMM (64x64 tiles), the tensor-core GEMM (64x64 and 128x128 tiles, split-K,
// K not a multiple of 4 or 8, N and M ragged). Skipped without a usable CUDA device.
import type { ExecutionContext } from 'ava';
import type { Engine } from '../../lib/index.ts';
import { assertBaseline, cudaDryRun, cudaEngine, cudaTest } from '../helpers/cuda.ts';
import { cpuRoundsBf16Activations } from '../helpers/engine.ts';
import { randn, roundBf16, toBf16Bits } from '../helpers/reference.ts';

// [M, K, N]
const CASES: [number, number, number][] = [
  [1, 1553, 35], // GEMV, vector path (K % 8 = 1: scalar), odd N
  [1, 1536, 129], // GEMV vector path
  [2, 33, 17],
  [5, 128, 130],
  [8, 96, 200],
  [9, 75, 33], // smallest GEMM; K % 4 != 0 (scalar activation loads), K % 8 != 0 (weight padding)
  [31, 129, 35],
  [64, 1553, 200], // split-K with a ragged last chunk
  [130, 256, 136],
  [253, 72, 8443], // 2 x 66 tiles of 128: the large-tile kernel on a 132-SM part
];

// compute bf16 rounds activations to bf16 on tensor cores (in a dry run: as the CPU does, on AMX or AVX512-BF16 only)
const ROUNDS_X = !cudaDryRun || cpuRoundsBf16Activations();

/** y = x w^T + b in float64 for the first `rows` rows (all when omitted); f32 = a float32 loop. */
function linearRows(x: Float32Array, w: Float32Array, b: Float32Array | null, m: number, k: number, n: number, f32 = false): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      const xo = i * k;
      const wo = j * k;
      if (f32) for (let e = 0; e < k; e++) s = Math.fround(s + Math.fround(x[xo + e] * w[wo + e]));
      else for (let e = 0; e < k; e++) s += x[xo + e] * w[wo + e];
      y[i * n + j] = s + (b ? b[j] : 0);
    }
  return y;
}

/** Compares the first min(M, 16) rows against the references (the f32 loop is slow in JS). */
// k: allowed multiple of the f32 loop's error (tensor cores accumulate in their own order and
// rounding, so their check allows more)
function check(t: ExecutionContext, got: Float32Array, x: Float32Array, w: Float32Array, b: Float32Array | null, m: number, k: number, n: number, label: string, kb = 4) {
  const rows = Math.min(m, 16);
  const xs = x.subarray(0, rows * k);
  const ref = linearRows(xs, w, b, rows, k, n);
  const base = linearRows(xs, w, b, rows, k, n, true);
  assertBaseline(t, got.subarray(0, rows * n), base, ref, label, kb);
  // the last rows too: ragged M tiles are where a masking bug would show
  if (m > rows) {
    const r0 = m - 3;
    const xl = x.subarray(r0 * k, m * k);
    assertBaseline(t, got.subarray(r0 * n, m * n), linearRows(xl, w, b, 3, k, n, true), linearRows(xl, w, b, 3, k, n), `${label} (last rows)`, kb);
  }
}

async function runAll(t: ExecutionContext, e: Engine, kind: 'f32' | 'bf16' | 'f16') {
  let seed = 1;
  for (const [m, k, n] of CASES) {
    const x = randn(m * k, seed++);
    const w = randn(n * k, seed++, 0.5);
    const b = randn(n, seed++);
    const label = `${kind} ${m}x${k}x${n}`;
    const xt = e.tensor(x, [m, k]);
    const bt = e.tensor(b, [n]);
    if (kind === 'f32') {
      const wt = e.tensor(w, [n, k]);
      check(t, await e.linear(xt, wt, bt).readFloat32(), x, w, b, m, k, n, `${label} plain`);
      check(t, await e.linear(xt, e.packLinear(wt)).readFloat32(), x, w, null, m, k, n, `${label} packed, no bias`);
    } else if (kind === 'bf16') {
      const wr = roundBf16(w);
      const w16 = e.tensor(Uint16Array.from(w, toBf16Bits), [n, k], 'bf16');
      // plain bf16 weights and packLinear(.., 'f32'): f32 activations (as the CPU backend)
      check(t, await e.linear(xt, w16, bt).readFloat32(), x, wr, b, m, k, n, `${label} plain bf16`);
      check(t, await e.linear(xt, e.packLinear(w16, 'f32'), bt).readFloat32(), x, wr, b, m, k, n, `${label} packed bf16 / f32 compute`);
      // compute bf16: tensor cores round the activations too above 8 rows, a CPU standing in (AMX /
      // AVX512-BF16) above 1 row (the GEMVs keep f32)
      const xr = ROUNDS_X && m > (cudaDryRun ? 1 : 8) ? roundBf16(x) : x;
      check(t, await e.linear(xt, e.packLinear(e.tensor(w, [n, k]), 'bf16'), bt).readFloat32(), xr, wr, b, m, k, n, `${label} packed bf16 / bf16 compute`, 8);
    } else {
      const h = new Float32Array(n * k);
      const bits = new Uint16Array(n * k);
      // f16 weights that are exact in f16 (multiples of 2^-10 in [-0.5, 0.5])
      for (let i = 0; i < h.length; i++) {
        h[i] = Math.round(w[i] * 1024) / 1024;
        bits[i] = f16Bits(h[i]);
      }
      check(t, await e.linear(xt, e.tensor(bits, [n, k], 'f16'), bt).readFloat32(), x, h, b, m, k, n, `${label} plain f16`);
    }
  }
}

/** IEEE half bits of a value exactly representable in f16 (normal range or zero). */
function f16Bits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const s = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  let e = Math.floor(Math.log2(a));
  if (e < -14) e = -14; // subnormal
  const mant = e === -14 && a < 2 ** -14 ? Math.round(a / 2 ** -24) : Math.round((a / 2 ** e - 1) * 1024);
  return e === -14 && a < 2 ** -14 ? s | mant : s | ((e + 15) << 10) | mant;
}

cudaTest('linear f32 weights (plain and packed): GEMV, f32 GEMM, ragged tiles', async (t) => {
  const e = cudaEngine();
  t.teardown(() => e.dispose());
  await runAll(t, e, 'f32');
});

cudaTest('linear bf16 weights: plain, packed f32 compute, packed bf16 compute (tensor cores, split-K, large tiles)', async (t) => {
  const e = cudaEngine();
  t.teardown(() => e.dispose());
  await runAll(t, e, 'bf16');
});

cudaTest('linear f16 weights (plain): GEMV and GEMM widen on load', async (t) => {
  const e = cudaEngine();
  t.teardown(() => e.dispose());
  await runAll(t, e, 'f16');
});

cudaTest('linear over leading dims [B, S, K] and with 1-D input', async (t) => {
  const e = cudaEngine();
  t.teardown(() => e.dispose());
  const [B, S, K, N] = [3, 11, 40, 24];
  const x = randn(B * S * K, 5);
  const w = randn(N * K, 6);
  const y = e.linear(e.tensor(x, [B, S, K]), e.packLinear(e.tensor(w, [N, K]), 'bf16'));
  t.deepEqual(y.shape, [B, S, N]);
  check(t, await y.readFloat32(), ROUNDS_X ? roundBf16(x) : x, roundBf16(w), null, B * S, K, N, '3-D input', 8);
  const v = e.linear(e.tensor(x.subarray(0, K), [K]), e.tensor(w, [N, K]));
  t.deepEqual(v.shape, [N]);
  check(t, await v.readFloat32(), x.subarray(0, K), w, null, 1, K, N, '1-D input');
});
