/**
 * The q8 weight format's rule (native/core/quant.h, written again from its definition): blocks of 32
 * along a row, scale d = f16(max|w| / 127), q = round(w / d) in [-127, 127] (half away from zero); the
 * weight the engine computes with is q * d. Under lib/ because the bench's GGUF writer quantises with
 * it (llama.cpp's Q8_0 has the same block layout), so llama.cpp and the engine compute with identical
 * weights; the tests check the engine against it.
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

/**
 * Quantises w[off .. off + len) (len <= 32; a shorter block counts as padded with zeros) into
 * q[qOff .. qOff + len); returns the block's scale d (an f16 value).
 */
export function quantiseQ8Block(w: ArrayLike<number>, off: number, len: number, q: Int8Array, qOff: number): number {
  let amax = 0;
  for (let j = 0; j < len; j++) amax = Math.max(amax, Math.abs(w[off + j]));
  const d = roundF16(Math.fround(amax / 127));
  const inv = d > 0 ? Math.fround(1 / d) : 0;
  for (let j = 0; j < len; j++) {
    const v = Math.fround(w[off + j] * inv);
    q[qOff + j] = Math.max(-127, Math.min(127, Math.sign(v) * Math.round(Math.abs(v))));
  }
  return d;
}

/** The weights [n, k] as the engine uses them after packLinear(w, 'q8'). */
export function dequantiseQ8(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  const q = new Int8Array(Q8_BLOCK);
  for (let r = 0; r < n; r++)
    for (let c0 = 0; c0 < k; c0 += Q8_BLOCK) {
      const len = Math.min(Q8_BLOCK, k - c0);
      const d = quantiseQ8Block(w, r * k + c0, len, q, 0);
      for (let j = 0; j < len; j++) out[r * k + c0 + j] = q[j] * d;
    }
  return out;
}
