/**
 * Naive float64 definitions of the ops that the op tests (CPU in test/ops, CUDA in test/cuda) compare
 * against: attention (docs/model.md section 3) and conv2d, plus the seeded attention operands both
 * attention suites draw. Straight loops over the engine's layouts (row-major, PyTorch dimension
 * order), written for clarity, not speed.
 */
import type { Engine } from '../../lib/index.ts';
import { randn } from './reference.ts';

/** One attention call: q [B, Sq, H, d], k and v [B, Skv, G, d], the image keys from imageCol0 on. */
export interface AttentionCase {
  B: number;
  Sq: number;
  Skv: number;
  H: number;
  G: number;
  d: number;
  mask: 'none' | 'causal' | 'prefix_causal';
  prefixLen?: number;
  imageCol0?: number;
  residual?: boolean;
  /** Logit scale; 1 / sqrt(d) when absent. */
  scale?: number;
}

/**
 * Straight from docs/model.md section 3: S = q k^T * scale, S[:, img] += gate * R, R_out = S[:, img],
 * softmax(S) v. Returns out [B, Sq, H, d] and the image-key logits [B, H, Sq, Skv - imageCol0]
 * (masked entries -inf).
 */
export function attentionRef(c: AttentionCase, q: Float32Array, k: Float32Array, v: Float32Array, res: Float32Array | null, gate: Float32Array | null) {
  const { B, Sq, Skv, H, G, d } = c;
  const c0 = c.imageCol0 ?? Skv;
  const Ni = Skv - c0;
  const out = new Float64Array(B * Sq * H * d);
  const logits = new Float64Array(B * H * Sq * Ni);
  const scale = c.scale ?? 1 / Math.sqrt(d);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      for (let i = 0; i < Sq; i++) {
        const qpos = Skv - Sq + i;
        const s = new Float64Array(Skv);
        let mx = -Infinity;
        for (let j = 0; j < Skv; j++) {
          const visible = c.mask === 'none' || (c.mask === 'causal' ? j <= qpos : qpos >= (c.prefixLen ?? 0) || j <= qpos);
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[((b * Sq + i) * H + h) * d + e] * k[((b * Skv + j) * G + g) * d + e];
          let sj = dot * scale;
          if (res && gate && j >= c0) sj += gate[b * H + h] * res[((b * H + h) * Sq + i) * Ni + j - c0];
          s[j] = visible ? sj : -Infinity;
          if (j >= c0) logits[((b * H + h) * Sq + i) * Ni + j - c0] = s[j];
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < Skv; j++) z += s[j] = Math.exp(s[j] - mx);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = 0; j < Skv; j++) acc += (s[j] / z) * v[((b * Skv + j) * G + g) * d + e];
          out[((b * Sq + i) * H + h) * d + e] = acc;
        }
      }
    }
  return { out, logits };
}

/**
 * Seeded operands for one attention case: q, k, v, then (when c.residual) the residual R (scale 3)
 * and the gate, one seed each from `seed` on. Ni is the number of image keys; `seed` comes back as
 * the next unused seed.
 */
export function attentionInputs(c: AttentionCase, seed: number) {
  const { B, Sq, Skv, H, G, d } = c;
  const q = randn(B * Sq * H * d, seed++);
  const k = randn(B * Skv * G * d, seed++);
  const v = randn(B * Skv * G * d, seed++);
  const Ni = c.imageCol0 === undefined ? 0 : Skv - c.imageCol0;
  const res = c.residual ? randn(B * H * Sq * Ni, seed++, 3) : null;
  const gate = c.residual ? randn(B * H, seed++) : null;
  return { q, k, v, res, gate, Ni, seed };
}

/**
 * The engine's attention on one case's operands (attentionInputs): the case's mask, scale and image
 * block, logits returned with an image block. With `cap`, k/v are a preallocated cache of cap rows
 * (padRows) and `past` (Skv - Sq) is an engine tensor read when the op runs.
 */
export function attentionOp(e: Engine, c: AttentionCase & { cap?: number }, x: ReturnType<typeof attentionInputs>, precision: 'f32' | 'bf16' = 'f32') {
  const { B, Sq, Skv, H, G, d } = c;
  const cap = c.cap ?? Skv;
  const kv = (a: Float32Array) => e.tensor(cap === Skv ? a : padRows(a, B, Skv, cap, G * d), [B, cap, G, d]);
  return e.attention(e.tensor(x.q, [B, Sq, H, d]), kv(x.k), kv(x.v), {
    mask: c.mask,
    prefixLen: c.prefixLen,
    imageCol0: c.imageCol0,
    scale: c.scale,
    returnLogits: c.imageCol0 !== undefined,
    residual: x.res ? e.tensor(x.res, [B, H, Sq, x.Ni]) : undefined,
    gate: x.gate ? e.tensor(x.gate, [B, H]) : undefined,
    past: c.cap === undefined ? undefined : e.tensor(Int32Array.from([Skv - Sq]), [1], 'i32'),
    precision,
  });
}

/**
 * A preallocated cache's form of k or v [B, Skv, G, d]: [B, cap, G, d] with NaN in the rows past Skv,
 * so a kernel that reads beyond `past + Sq` poisons its output.
 */
export function padRows(x: Float32Array, B: number, Skv: number, cap: number, row: number): Float32Array {
  const out = new Float32Array(B * cap * row).fill(NaN);
  for (let b = 0; b < B; b++) out.set(x.subarray(b * Skv * row, (b + 1) * Skv * row), b * cap * row);
  return out;
}

/** conv2d of x [N, Cin, H, W] with w [Cout, Cin / groups, kh, kw] (+ bias [Cout]), zero padding. */
export function conv2dRef(x: Float32Array, w: Float32Array, b: Float32Array | null, [N, Cin, H, W]: number[], [Cout, , kh, kw]: number[], stride: number, pad: number, groups: number) {
  const Ho = Math.floor((H + 2 * pad - kh) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - kw) / stride) + 1;
  const cinG = Cin / groups;
  const coutG = Cout / groups;
  const y = new Float64Array(N * Cout * Ho * Wo);
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++) {
      const g = Math.floor(co / coutG);
      for (let ho = 0; ho < Ho; ho++)
        for (let wo = 0; wo < Wo; wo++) {
          let s = b ? b[co] : 0;
          for (let ci = 0; ci < cinG; ci++)
            for (let i = 0; i < kh; i++)
              for (let j = 0; j < kw; j++) {
                const hi = ho * stride - pad + i;
                const wi = wo * stride - pad + j;
                if (hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
                s += x[((n * Cin + g * cinG + ci) * H + hi) * W + wi] * w[((co * cinG + ci) * kh + i) * kw + j];
              }
          y[((n * Cout + co) * Ho + ho) * Wo + wo] = s;
        }
    }
  return { y, shape: [N, Cout, Ho, Wo] };
}

/**
 * A batch of rows whose prompts differ in length, padded to one: each row b has lens[b] prompt keys,
 * then padding up to pmax (random values: they must never be attended to), then N image keys. Returns
 * the padded q/k/v/res/gate and, per row, the reference out and logits of that row alone, unpadded.
 */
export function paddedPromptCase(lens: number[], N: number, H: number, G: number, d: number, seed: number, round: (x: Float32Array) => Float32Array = (x) => x) {
  const B = lens.length;
  const pmax = Math.max(...lens);
  const Skv = pmax + N;
  const q = randn(B * N * H * d, seed++);
  const k = randn(B * Skv * G * d, seed++);
  const v = randn(B * Skv * G * d, seed++);
  const res = randn(B * H * N * N, seed++, 3);
  const gate = randn(B * H, seed++);
  const rowOut: Float64Array[] = [];
  const rowLogits: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    const n = lens[b] + N;
    const keep = (x: Float32Array) => {
      const r = new Float32Array(n * G * d);
      const row = x.subarray(b * Skv * G * d, (b + 1) * Skv * G * d);
      r.set(row.subarray(0, lens[b] * G * d), 0); // the prompt
      r.set(row.subarray(pmax * G * d), lens[b] * G * d); // the image keys
      return r;
    };
    const c: AttentionCase = { B: 1, Sq: N, Skv: n, H, G, d, mask: 'none', imageCol0: lens[b], residual: true };
    // `round`: the references of inputs rounded so (a bf16 kernel's baseline); q, k, v returned as drawn
    const want = attentionRef(c, round(q.subarray(b * N * H * d, (b + 1) * N * H * d)), round(keep(k)), round(keep(v)), res.subarray(b * H * N * N, (b + 1) * H * N * N), gate.subarray(b * H, (b + 1) * H));
    rowOut.push(want.out);
    rowLogits.push(want.logits);
  }
  return { q, k, v, res, gate, pmax, Skv, rowOut, rowLogits };
}
