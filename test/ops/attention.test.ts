import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { attentionInputs, attentionOp, attentionRef, paddedPromptCase, padRows, type AttentionCase } from '../helpers/naive-ops.ts';
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
    const { B, Sq, H } = c;
    const x = attentionInputs(c, seed);
    seed = x.seed;
    const want = attentionRef(c, x.q, x.k, x.v, x.res, x.gate);
    const Ni = x.Ni;
    const { out, logits } = attentionOp(e, c, x);
    const label = JSON.stringify(c);
    assertClose(t, await out.readFloat32(), want.out, 2e-6, `out ${label}`);
    if (logits) {
      t.deepEqual(logits.shape, [B, H, Sq, Ni]);
      assertClose(t, await logits.readFloat32(), want.logits, 2e-6, `logits ${label}`);
    }
  }
});

// A preallocated K/V cache: k/v have `cap` rows, only past + Sq exist (NaN after them), and `past` is
// an engine tensor read when the op runs.
const CACHED: (AttentionCase & { cap: number })[] = [
  { B: 2, Sq: 1, Skv: 70, cap: 96, H: 6, G: 2, d: 64, mask: 'causal' }, // decode step
  { B: 1, Sq: 5, Skv: 23, cap: 40, H: 4, G: 2, d: 32, mask: 'causal' }, // several rows at once
  { B: 1, Sq: 12, Skv: 12, cap: 33, H: 2, G: 1, d: 16, mask: 'causal' }, // prefill into an empty cache
  { B: 1, Sq: 3, Skv: 9, cap: 10, H: 2, G: 2, d: 8, mask: 'none' },
];

test('attention over a preallocated cache reads only the keys that exist (past + Sq)', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  let seed = 50;
  for (const c of CACHED) {
    const { B, Sq, Skv, H, G, d, cap } = c;
    const { q, k, v, seed: next } = attentionInputs(c, seed);
    seed = next;
    const want = attentionRef(c, q, k, v, null, null);
    const past = e.tensor(Int32Array.from([Skv - Sq]), [1], 'i32');
    const kc = e.tensor(padRows(k, B, Skv, cap, G * d), [B, cap, G, d]);
    const vc = e.tensor(padRows(v, B, Skv, cap, G * d), [B, cap, G, d]);
    const { out } = e.attention(e.tensor(q, [B, Sq, H, d]), kc, vc, { mask: c.mask, past });
    assertClose(t, await out.readFloat32(), want.out, 2e-6, `cached ${JSON.stringify(c)}`);
  }
  // a length that does not fit the rows fails when the op runs
  const q = e.tensor(new Float32Array(2 * 8), [1, 2, 1, 8]);
  const kv = e.tensor(new Float32Array(4 * 8), [1, 4, 1, 8]);
  const err = await t.throwsAsync(e.attention(q, kv, kv, { mask: 'causal', past: e.tensor(Int32Array.from([3]), [1], 'i32') }).out.read(), { instanceOf: LatteError });
  t.is(err?.code, 'E_INDEX');
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
  const past = e.tensor(Int32Array.from([0]), [1], 'i32');
  t.is(code(() => e.attention(q, k1, k1, { past: e.tensor(new Float32Array(1), [1]) })), 'E_DTYPE');
  t.is(code(() => e.attention(q, k1, k1, { past: e.tensor(Int32Array.from([0, 0]), [2], 'i32') })), 'E_SHAPE');
  t.is(code(() => e.attention(q, k1, k1, { past, imageCol0: 1 })), 'E_ARG'); // no image block with a cache
  t.is(code(() => e.attention(q, k1, k1, { past, mask: 'prefix_causal', prefixLen: 1 })), 'E_ARG');
});

test('attention with promptLen: rows with prompts padded to one length equal each row alone, unpadded', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  // 9 image rows take the row path, 16 and 70 the tiled one (the last over two query blocks)
  const runs = [
    { lens: [5, 9, 1, 9], N: 9, d: 16 },
    { lens: [5, 9, 1, 9], N: 16, d: 16 },
    { lens: [5, 40, 1, 40], N: 70, d: 32 },
  ];
  let seed = 41;
  for (const { lens, N, d } of runs) {
    const [H, G] = [4, 2];
    const { q, k, v, res, gate, pmax, Skv, rowOut, rowLogits } = paddedPromptCase(lens, N, H, G, d, seed++);
    const B = lens.length;
    const { out, logits } = e.attention(e.tensor(q, [B, N, H, d]), e.tensor(k, [B, Skv, G, d]), e.tensor(v, [B, Skv, G, d]), {
      imageCol0: pmax,
      returnLogits: true,
      residual: e.tensor(res, [B, H, N, N]),
      gate: e.tensor(gate, [B, H]),
      promptLen: e.tensor(new Int32Array(lens), [B], 'i32'),
    });
    const o = await out.readFloat32();
    const l = await logits!.readFloat32();
    for (let b = 0; b < B; b++) {
      assertClose(t, o.subarray(b * N * H * d, (b + 1) * N * H * d), rowOut[b], 2e-6, `out row ${b} (prompt ${lens[b]}, ${N} image rows)`);
      assertClose(t, l.subarray(b * H * N * N, (b + 1) * H * N * N), rowLogits[b], 2e-6, `logits row ${b} (${N} image rows)`);
    }
  }
  const lens = [5, 9, 1, 9];
  const [N, H, G, d] = [16, 4, 2, 16];
  const { q, k, pmax, Skv } = paddedPromptCase(lens, N, H, G, d, 41);
  const B = lens.length;
  // checked operands: i32 [B], and only with an image block
  const x = e.tensor(q, [B, N, H, d]);
  const kk = e.tensor(k, [B, Skv, G, d]);
  t.throws(() => e.attention(x, kk, kk, { imageCol0: pmax, promptLen: e.tensor(new Int32Array(lens.slice(1)), [B - 1], 'i32') }), { instanceOf: LatteError, message: /prompt_len/ });
  t.throws(() => e.attention(x, kk, kk, { promptLen: e.tensor(new Int32Array(lens), [B], 'i32') }), { instanceOf: LatteError, message: /needs image_col0/ });
});
