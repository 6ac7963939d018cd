import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { attentionInputs, attentionRef, type AttentionCase } from '../helpers/naive-ops.ts';
import { assertClose, randn } from '../helpers/reference.ts';

const CASES: AttentionCase[] = [
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
    const { q, k, v, res, gate, Ni, seed: next } = attentionInputs(c, seed);
    seed = next;
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
