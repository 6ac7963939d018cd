// CUDA fused attention vs the float64 definition (docs/model.md section 3), tolerance from the CPU
// backend's own f32 error on the same case: masks, GQA, decode over many key tiles (split over the
// keys by attention_decode.cu), the TCRA residual with returned logits (masked columns -inf), every
// head-dim configuration of the kernel (<= 64, <= 128, <= 256, <= 1024). Skipped without a usable
// CUDA device.
import type { Engine } from '../../lib/index.ts';
import { assertSame, compareAttention, cudaTest, Pair } from '../helpers/cuda.ts';
import { attentionInputs, attentionOp, attentionRef, paddedPromptCase, padRows, type AttentionCase } from '../helpers/naive-ops.ts';
import { randn } from '../helpers/reference.ts';

const CASES: AttentionCase[] = [
  { B: 1, Sq: 33, Skv: 33, H: 4, G: 2, d: 32, mask: 'causal' }, // prefill with GQA
  { B: 2, Sq: 1, Skv: 1025, H: 6, G: 2, d: 64, mask: 'causal' }, // decode: 33 key tiles, one query
  { B: 1, Sq: 31, Skv: 31, H: 2, G: 2, d: 16, mask: 'none' },
  { B: 2, Sq: 20, Skv: 20, H: 4, G: 1, d: 8, mask: 'prefix_causal', prefixLen: 7 },
  { B: 1, Sq: 50, Skv: 150, H: 2, G: 1, d: 64, mask: 'prefix_causal', prefixLen: 120 }, // queries on both sides of the prefix
  { B: 2, Sq: 16, Skv: 27, H: 4, G: 2, d: 16, mask: 'none', imageCol0: 11, residual: true }, // TCRA image queries
  { B: 1, Sq: 9, Skv: 14, H: 2, G: 1, d: 32, mask: 'none', imageCol0: 5, residual: false }, // first layer of a group
  { B: 1, Sq: 100, Skv: 117, H: 12, G: 2, d: 128, mask: 'none', imageCol0: 17, residual: true }, // generator-like
  { B: 1, Sq: 70, Skv: 70, H: 4, G: 4, d: 80, mask: 'none' }, // vision tower head dim
  { B: 1, Sq: 40, Skv: 70, H: 3, G: 3, d: 96, mask: 'causal', imageCol0: 20, residual: true }, // causal logits: -inf columns
  { B: 1, Sq: 37, Skv: 37, H: 2, G: 1, d: 256, mask: 'causal', scale: 0.05 },
  { B: 1, Sq: 5, Skv: 40, H: 2, G: 2, d: 320, mask: 'causal', imageCol0: 30, residual: true }, // d > 256 configuration
  // split-KV decode (attention_decode.cu: <= 4 queries, >= 256 keys, no image block)
  { B: 1, Sq: 3, Skv: 700, H: 4, G: 1, d: 128, mask: 'prefix_causal', prefixLen: 698 }, // queries on both sides of the prefix
  { B: 2, Sq: 4, Skv: 256, H: 3, G: 3, d: 80, mask: 'causal' }, // two chunks exactly
  { B: 1, Sq: 1, Skv: 300, H: 2, G: 2, d: 256, mask: 'none' }, // its largest head dim, a partial last chunk
];

cudaTest('attention: masks, GQA, decode, TCRA residual and logits, every head-dim configuration', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  let seed = 1;
  for (const c of CASES) {
    const { B, Sq, H } = c;
    const x = attentionInputs(c, seed);
    seed = x.seed;
    const want = attentionRef(c, x.q, x.k, x.v, x.res, x.gate);
    const Ni = x.Ni;
    const a = attentionOp(p.cpu, c, x);
    const b = attentionOp(p.cuda, c, x);
    const label = JSON.stringify(c);
    compareAttention(t, await b.out.readFloat32(), await a.out.readFloat32(), want.out, `out ${label}`);
    if (b.logits) {
      t.deepEqual(b.logits.shape, [B, H, Sq, Ni]);
      compareAttention(t, await b.logits.readFloat32(), await a.logits!.readFloat32(), want.logits, `logits ${label}`);
    }
  }
});

cudaTest('attention over a preallocated cache: past read on the device, rows past it (NaN) never read', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const cases: (AttentionCase & { cap: number })[] = [
    { B: 2, Sq: 1, Skv: 1000, cap: 1100, H: 6, G: 2, d: 64, mask: 'causal' }, // decode over many key tiles
    { B: 1, Sq: 5, Skv: 23, cap: 40, H: 4, G: 2, d: 128, mask: 'causal' },
    { B: 1, Sq: 12, Skv: 12, cap: 33, H: 2, G: 1, d: 16, mask: 'causal' }, // prefill into an empty cache
  ];
  let seed = 70;
  for (const c of cases) {
    const { B, Sq, Skv, H, G, d, cap } = c;
    const { q, k, v, seed: next } = attentionInputs(c, seed);
    seed = next;
    const want = attentionRef(c, q, k, v, null, null);
    const run = (e: Engine) =>
      e.attention(e.tensor(q, [B, Sq, H, d]), e.tensor(padRows(k, B, Skv, cap, G * d), [B, cap, G, d]), e.tensor(padRows(v, B, Skv, cap, G * d), [B, cap, G, d]), {
        mask: c.mask,
        past: e.tensor(Int32Array.from([Skv - Sq]), [1], 'i32'),
      }).out;
    compareAttention(t, await run(p.cuda).readFloat32(), await run(p.cpu).readFloat32(), want.out, `cached ${JSON.stringify(c)}`);
  }
});

cudaTest('attention: a zero gate leaves the output bit-identical; logits chain through layers', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  const e = p.cuda;
  const [B, Sq, Skv, H, d, c0] = [1, 40, 45, 2, 64, 5];
  const q = e.tensor(randn(B * Sq * H * d, 1), [B, Sq, H, d]);
  const k = e.tensor(randn(B * Skv * H * d, 2), [B, Skv, H, d]);
  const v = e.tensor(randn(B * Skv * H * d, 3), [B, Skv, H, d]);
  const first = e.attention(q, k, v, { imageCol0: c0, returnLogits: true });
  const zero = e.attention(q, k, v, { imageCol0: c0, returnLogits: true, residual: first.logits, gate: e.tensor(new Float32Array(B * H), [B, H]) });
  assertSame(t, await zero.out.readFloat32(), await first.out.readFloat32(), 'zero gate');
  const one = e.attention(q, k, v, { imageCol0: c0, returnLogits: true, residual: first.logits, gate: e.tensor(new Float32Array(B * H).fill(1), [B, H]) });
  const l1 = await first.logits!.readFloat32();
  assertSame(t, await one.logits!.readFloat32(), Array.from(l1, (x) => Math.fround(x + x)), 'chained logits (2x, exact)');
});

cudaTest('attention with promptLen (a batch of requests, prompts padded to one length): each row equals itself alone', async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  for (const [lens, d] of [[[5, 9, 1, 9], 16], [[40, 3, 70], 128]] as [number[], number][]) {
    const [N, H, G] = [16, 4, 2];
    const { q, k, v, res, gate, pmax, Skv, rowOut, rowLogits } = paddedPromptCase(lens, N, H, G, d, 7);
    const B = lens.length;
    const run = (e: Engine) =>
      e.attention(e.tensor(q, [B, N, H, d]), e.tensor(k, [B, Skv, G, d]), e.tensor(v, [B, Skv, G, d]), {
        imageCol0: pmax, returnLogits: true, residual: e.tensor(res, [B, H, N, N]), gate: e.tensor(gate, [B, H]), promptLen: e.tensor(new Int32Array(lens), [B], 'i32'),
      });
    const a = run(p.cpu);
    const b = run(p.cuda);
    const [ao, bo, al, bl] = [await a.out.readFloat32(), await b.out.readFloat32(), await a.logits!.readFloat32(), await b.logits!.readFloat32()];
    for (let r = 0; r < B; r++) {
      const o = (x: Float32Array) => x.subarray(r * N * H * d, (r + 1) * N * H * d);
      const l = (x: Float32Array) => x.subarray(r * H * N * N, (r + 1) * H * N * N);
      compareAttention(t, o(bo), o(ao), rowOut[r], `out row ${r} of ${JSON.stringify(lens)}`);
      compareAttention(t, l(bl), l(al), rowLogits[r], `logits row ${r}`);
    }
  }
});
