/**
 * The q8 weight format's reference for the tests: the rule itself is lib/bench/q8-rule.ts (shared with
 * the bench's GGUF writer); here, the error bound of the int8 GEMV, which also quantises each block of
 * x (scale max|x| / 127): |y - x . (q d)| <= sum over blocks (dx / 2) sum |q d|.
 */
import { Q8_BLOCK } from '../../lib/bench/q8-rule.ts';

export { dequantiseQ8, Q8_BLOCK, roundF16 } from '../../lib/bench/q8-rule.ts';

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
