/**
 * The q8 weight format's reference (native/core/quant.h, written again from its definition): blocks
 * of 32 along a row, scale d = f16(max|w| / 127), q = round(w / d) in [-127, 127]; the weight the
 * engine computes with is q * d. And the error bound of the int8 GEMV, which also quantises each
 * block of x (scale max|x| / 127): |y - x . (q d)| <= sum over blocks (dx / 2) sum |q d|.
 */
export const Q8_BLOCK = 32;

/** IEEE half rounding (nearest even) of a float32 value, as a number (normal and subnormal range). */
export function roundF16(x: number): number {
  const a = Math.abs(x);
  if (a === 0 || !Number.isFinite(a)) return x;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = a / ulp;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  return Math.sign(x) * Math.min(r * ulp, 65504);
}

/** The weights [n, k] as the engine uses them after packLinear(w, 'q8'). */
export function dequantiseQ8(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++)
    for (let c0 = 0; c0 < k; c0 += Q8_BLOCK) {
      const len = Math.min(Q8_BLOCK, k - c0);
      let amax = 0;
      for (let j = 0; j < len; j++) amax = Math.max(amax, Math.abs(w[r * k + c0 + j]));
      const d = roundF16(Math.fround(amax / 127));
      const inv = d > 0 ? Math.fround(1 / d) : 0;
      for (let j = 0; j < len; j++) {
        const v = Math.fround(w[r * k + c0 + j] * inv);
        const q = Math.max(-127, Math.min(127, Math.sign(v) * Math.round(Math.abs(v))));
        out[r * k + c0 + j] = q * d;
      }
    }
  return out;
}

/** Per output: the bound on |y - x . wq| from quantising x per block ((max|x| / 127) / 2 per element). */
export function q8ActivationBound(x: Float32Array, wq: Float32Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let c0 = 0; c0 < k; c0 += Q8_BLOCK) {
      const len = Math.min(Q8_BLOCK, k - c0);
      let amax = 0;
      for (let j = 0; j < len; j++) amax = Math.max(amax, Math.abs(x[i * k + c0 + j]));
      const half = amax / 127 / 2;
      for (let r = 0; r < n; r++) {
        let s = 0;
        for (let j = 0; j < len; j++) s += Math.abs(wq[r * k + c0 + j]);
        out[i * n + r] += half * s;
      }
    }
  return out;
}

/** Per output: sum |x| |w| (the scale of rounding errors in a product). */
export function absProduct(x: Float32Array, w: Float32Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.abs(x[i * k + j] * w[r * k + j]);
      out[i * n + r] = s;
    }
  return out;
}
