import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { assertClose, randn } from '../helpers/reference.ts';

interface Case {
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
}

/** Straight from model.md section 3: S = q k^T * scale, S[:, img] += gate * R, R_out = S[:, img], softmax(S) v. */
function attentionRef(c: Case, q: Float32Array, k: Float32Array, v: Float32Array, res: Float32Array | null, gate: Float32Array | null) {
  const { B, Sq, Skv, H, G, d } = c;
  const c0 = c.imageCol0 ?? Skv;
  const Ni = Skv - c0;
  const out = new Float64Array(B * Sq * H * d);
  const logits = new Float64Array(B * H * Sq * Ni);
  const scale = 1 / Math.sqrt(d);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      for (let i = 0; i < Sq; i++) {
        const qpos = Skv - Sq + i;
        const s: number[] = [];
        for (let j = 0; j < Skv; j++) {
          const visible = c.mask === 'none' || (c.mask === 'causal' ? j <= qpos : qpos >= (c.prefixLen ?? 0) || j <= qpos);
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[((b * Sq + i) * H + h) * d + e] * k[((b * Skv + j) * G + g) * d + e];
          let sj = dot * scale;
          if (res && gate && j >= c0) sj += gate[b * H + h] * res[((b * H + h) * Sq + i) * Ni + j - c0];
          s.push(visible ? sj : -Infinity);
          if (j >= c0) logits[((b * H + h) * Sq + i) * Ni + j - c0] = visible ? sj : -Infinity;
        }
        const mx = Math.max(...s);
        const p = s.map((x) => Math.exp(x - mx));
        const z = p.reduce((a, x) => a + x, 0);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = 0; j < Skv; j++) acc += (p[j] / z) * v[((b * Skv + j) * G + g) * d + e];
          out[((b * Sq + i) * H + h) * d + e] = acc;
        }
      }
    }
  return { out, logits };
}

const CASES: Case[] = [
  { B: 1, Sq: 33, Skv: 33, H: 4, G: 2, d: 32, mask: 'causal' }, // prefill with GQA
  { B: 2, Sq: 1, Skv: 129, H: 6, G: 2, d: 64, mask: 'causal' }, // decode step
  { B: 1, Sq: 31, Skv: 31, H: 2, G: 2, d: 16, mask: 'none' }, // vision: full attention
  { B: 2, Sq: 20, Skv: 20, H: 4, G: 1, d: 8, mask: 'prefix_causal', prefixLen: 7 }, // text then image
  { B: 2, Sq: 16, Skv: 27, H: 4, G: 2, d: 16, mask: 'none', imageCol0: 11, residual: true }, // TCRA image queries
  { B: 1, Sq: 9, Skv: 14, H: 2, G: 1, d: 32, mask: 'none', imageCol0: 5, residual: false }, // first layer of a group
];

test('attention: masks, GQA, decode, and the TCRA residual with returned logits', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  let seed = 1;
  for (const c of CASES) {
    const { B, Sq, Skv, H, G, d } = c;
    const q = randn(B * Sq * H * d, seed++);
    const k = randn(B * Skv * G * d, seed++);
    const v = randn(B * Skv * G * d, seed++);
    const Ni = c.imageCol0 === undefined ? 0 : Skv - c.imageCol0;
    const res = c.residual ? randn(B * H * Sq * Ni, seed++, 3) : null;
    const gate = c.residual ? randn(B * H, seed++) : null;
    const want = attentionRef(c, q, k, v, res, gate);
    const { out, logits } = e.attention(e.tensor(q, [B, Sq, H, d]), e.tensor(k, [B, Skv, G, d]), e.tensor(v, [B, Skv, G, d]), {
      mask: c.mask,
      prefixLen: c.prefixLen,
      imageCol0: c.imageCol0,
      returnLogits: c.imageCol0 !== undefined,
      residual: res ? e.tensor(res, [B, H, Sq, Ni]) : undefined,
      gate: gate ? e.tensor(gate, [B, H]) : undefined,
    });
    const label = JSON.stringify(c);
    assertClose(t, await out.readFloat32(), want.out, 2e-6, `out ${label}`);
    if (logits) {
      t.deepEqual(logits.shape, [B, H, Sq, Ni]);
      assertClose(t, await logits.readFloat32(), want.logits, 2e-6, `logits ${label}`);
    }
  }
});

test('a zero gate makes the residual vanish; the logits chain through layers', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [B, Sq, Skv, H, d, c0] = [1, 8, 12, 2, 16, 4];
  const q = e.tensor(randn(B * Sq * H * d, 1), [B, Sq, H, d]);
  const k = e.tensor(randn(B * Skv * H * d, 2), [B, Skv, H, d]);
  const v = e.tensor(randn(B * Skv * H * d, 3), [B, Skv, H, d]);
  const first = e.attention(q, k, v, { imageCol0: c0, returnLogits: true });
  const zero = e.attention(q, k, v, { imageCol0: c0, returnLogits: true, residual: first.logits, gate: e.tensor(new Float32Array(B * H), [B, H]) });
  assertClose(t, await zero.out.readFloat32(), await first.out.readFloat32(), 0, 'zero gate');
  // gate 1 doubles the image logits (same q, k): the returned logits are 2x the first layer's
  const one = e.attention(q, k, v, { imageCol0: c0, returnLogits: true, residual: first.logits, gate: e.tensor(new Float32Array(B * H).fill(1), [B, H]) });
  const l1 = await first.logits!.readFloat32();
  assertClose(t, await one.logits!.readFloat32(), Array.from(l1, (x) => 2 * x), 1e-6, 'chained logits');
});

test('attention validates operands', (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const q = e.tensor(new Float32Array(1 * 4 * 3 * 8), [1, 4, 3, 8]);
  const k = e.tensor(new Float32Array(1 * 4 * 2 * 8), [1, 4, 2, 8]);
  const k1 = e.tensor(new Float32Array(1 * 4 * 1 * 8), [1, 4, 1, 8]);
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => e.attention(q, k, k)), 'E_SHAPE'); // 3 heads over 2 kv heads
  t.is(code(() => e.attention(q, k1, k)), 'E_SHAPE'); // v differs from k
  t.is(code(() => e.attention(q, k1, k1, { returnLogits: true })), 'E_ARG'); // no image block
  const res = e.tensor(new Float32Array(36), [1, 3, 4, 3]);
  t.is(code(() => e.attention(q, k1, k1, { imageCol0: 1, residual: res })), 'E_ARG'); // residual without gate
  t.is(code(() => e.attention(q, k1, k1, { imageCol0: 1, residual: res, gate: e.tensor(new Float32Array(3), [3, 1]) })), 'E_SHAPE');
  t.is(code(() => e.attention(q, k1, k1, { imageCol0: 1, residual: e.tensor(new Float32Array(27), [1, 3, 3, 3]), gate: e.tensor(new Float32Array(3), [1, 3]) })), 'E_SHAPE');
  t.is(code(() => e.attention(q, k1, k1, { mask: 'diagonal' as 'none' })), 'E_ARG');
  t.is(code(() => e.attention(q, k1, k1, { mask: 'prefix_causal', prefixLen: 9 })), 'E_ARG');
});
