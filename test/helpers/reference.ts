/**
 * Naive reference implementations (float64, straight from the definitions) and comparison
 * helpers for the op tests. Layouts match the engine: row-major, PyTorch dimension order.
 */
import type { ExecutionContext } from 'ava';

/** Seeded PRNG (mulberry32) so every test run sees the same data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [-scale, scale). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
/** PyTorch's float -> bfloat16 rounding (nearest even), as raw bits. */
export function toBf16Bits(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
export function fromBf16Bits(h: number): number {
  u32buf[0] = h << 16;
  return f32buf[0];
}
export function roundBf16(a: Float32Array): Float32Array {
  return a.map((x) => fromBf16Bits(toBf16Bits(x)));
}

/** y[m,n] = sum_k x[m,k] w[n,k] + b[n] (nn.Linear). `f32` accumulates in float32 (a same-precision baseline). */
export function linearRef(x: Float32Array, w: Float32Array, b: Float32Array | null, m: number, k: number, n: number, f32 = false): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let e = 0; e < k; e++) s = f32 ? Math.fround(s + Math.fround(x[i * k + e] * w[j * k + e])) : s + x[i * k + e] * w[j * k + e];
      y[i * n + j] = s + (b ? b[j] : 0);
    }
  return y;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** The largest |got[i] - want[i]| over want's length (Infinity where one is NaN) and its index (-1 if none). */
export function worstDiff(got: ArrayLike<number>, want: ArrayLike<number>): { worst: number; at: number } {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst) || Number.isNaN(d)) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  return { worst, at };
}

/**
 * Asserts got ~= want: max |got - want| <= rtol * max |want| (+ atol). Fails on NaN and on a
 * length mismatch, and names the worst element.
 */
export function assertClose(t: ExecutionContext, got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, label = '', atol = 0): void {
  t.is(got.length, want.length, `${label}: length`);
  const { worst, at } = worstDiff(got, want);
  const bound = rtol * maxAbs(want) + atol;
  t.true(worst <= bound, `${label}: max error ${worst} at ${at} (got ${got[at]}, want ${want[at]}) exceeds ${bound}`);
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}
