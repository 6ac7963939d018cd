// The tensor-core attention (native/cuda/attention_tc.cu, issue 19), taken with `precision: 'bf16'`:
// against the float64 definition, bounded by a bf16 reference's own distance from it (the same
// definition on q, k, v rounded to bf16: what any bf16 kernel starts from; the kernel also rounds the
// probabilities, hence k = 4). Cases cover every head dim it is built for, several query and key
// tiles with a partial last one, masks, GQA, the TCRA residual with its logits (masked -inf), the K/V
// cache with `past` on the device, and prompts padded per row. Calls it does not take (fewer than 16
// queries, head dims it is not built for) must give the f32 kernel's results. The CPU computes f32
// for either precision, so the dry run checks only the references and plumbing.
import test from 'ava';
import { Engine } from '../../lib/index.ts';
import { compareAttention, cudaTest, Pair } from '../helpers/cuda.ts';
import { attentionInputs, attentionOp, attentionRef, paddedPromptCase, type AttentionCase } from '../helpers/naive-ops.ts';
import { roundBf16 } from '../helpers/reference.ts';

type Case = AttentionCase & { cap?: number };

const TC_CASES: Case[] = [
  { B: 1, Sq: 200, Skv: 200, H: 4, G: 4, d: 80, mask: 'none' }, // vision head dim: 4 query and 4 key tiles, partial last
  { B: 1, Sq: 100, Skv: 100, H: 4, G: 2, d: 128, mask: 'causal' }, // prefill with GQA
  { B: 2, Sq: 64, Skv: 96, H: 4, G: 2, d: 64, mask: 'none', imageCol0: 32, residual: true }, // generator rows, TCRA
  { B: 1, Sq: 40, Skv: 70, H: 3, G: 3, d: 96, mask: 'causal', imageCol0: 20, residual: true }, // causal logits: -inf columns
  { B: 1, Sq: 50, Skv: 150, H: 2, G: 1, d: 64, mask: 'prefix_causal', prefixLen: 120 },
  { B: 2, Sq: 16, Skv: 32, H: 4, G: 2, d: 32, mask: 'none', imageCol0: 16, residual: true }, // the shipped generator's shape
  { B: 1, Sq: 17, Skv: 17, H: 2, G: 2, d: 16, mask: 'causal' }, // the shipped vision tower's head dim
  { B: 1, Sq: 30, Skv: 45, H: 2, G: 1, d: 48, mask: 'none', imageCol0: 15, residual: false }, // logits without a residual
  { B: 1, Sq: 33, Skv: 33, H: 2, G: 2, d: 112, mask: 'none', scale: 0.05 },
  { B: 1, Sq: 20, Skv: 60, cap: 80, H: 4, G: 2, d: 64, mask: 'causal' }, // a cache: past = 40, rows past 60 NaN
];

/** Cases the tensor-core kernel leaves to the f32 one. */
const F32_CASES: Case[] = [
  { B: 2, Sq: 1, Skv: 300, H: 6, G: 2, d: 64, mask: 'causal' }, // decode
  { B: 1, Sq: 20, Skv: 20, H: 2, G: 1, d: 8, mask: 'none' }, // head dim not a multiple of 16
  { B: 1, Sq: 37, Skv: 37, H: 2, G: 1, d: 256, mask: 'causal' }, // above 128
];



cudaTest("attention, precision 'bf16': tensor cores within a bf16 reference's error, every head dim and mask", async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  let seed = 101;
  for (const c of TC_CASES) {
    const x = attentionInputs(c, seed);
    seed = x.seed;
    const exact = attentionRef(c, x.q, x.k, x.v, x.res, x.gate);
    const bf16 = attentionRef(c, roundBf16(x.q), roundBf16(x.k), roundBf16(x.v), x.res, x.gate);
    const got = attentionOp(p.cuda, c, x, 'bf16');
    const label = JSON.stringify(c);
    compareAttention(t, await got.out.readFloat32(), bf16.out, exact.out, `out ${label}`);
    if (got.logits) compareAttention(t, await got.logits.readFloat32(), bf16.logits, exact.logits, `logits ${label}`);
  }
});

cudaTest("attention, precision 'bf16': prompts padded per row (the generator's batched rows)", async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  for (const [lens, d] of [[[5, 9, 1, 9], 16], [[40, 3, 70], 128]] as [number[], number][]) {
    const [N, H, G] = [16, 4, 2];
    const exact = paddedPromptCase(lens, N, H, G, d, 17);
    const bf16 = paddedPromptCase(lens, N, H, G, d, 17, roundBf16);
    const { q, k, v, res, gate, pmax, Skv } = exact;
    const B = lens.length;
    const e = p.cuda;
    const r = e.attention(e.tensor(q, [B, N, H, d]), e.tensor(k, [B, Skv, G, d]), e.tensor(v, [B, Skv, G, d]), {
      imageCol0: pmax, returnLogits: true, residual: e.tensor(res, [B, H, N, N]), gate: e.tensor(gate, [B, H]),
      promptLen: e.tensor(new Int32Array(lens), [B], 'i32'), precision: 'bf16',
    });
    const [out, logits] = [await r.out.readFloat32(), await r.logits!.readFloat32()];
    for (let b = 0; b < B; b++) {
      compareAttention(t, out.subarray(b * N * H * d, (b + 1) * N * H * d), bf16.rowOut[b], exact.rowOut[b], `out row ${b} of ${JSON.stringify(lens)}`);
      compareAttention(t, logits.subarray(b * H * N * N, (b + 1) * H * N * N), bf16.rowLogits[b], exact.rowLogits[b], `logits row ${b}`);
    }
  }
});

cudaTest("attention, precision 'bf16': calls the tensor-core kernel does not take give the f32 results", async (t) => {
  const p = new Pair();
  t.teardown(() => p.dispose());
  let seed = 301;
  for (const c of F32_CASES) {
    const x = attentionInputs(c, seed);
    seed = x.seed;
    const [a, b] = [attentionOp(p.cuda, c, x, 'f32'), attentionOp(p.cuda, c, x, 'bf16')];
    t.deepEqual(await b.out.readFloat32(), await a.out.readFloat32(), JSON.stringify(c));
  }
});

test('attention precision: f32 or bf16; anything else is E_ARG; the CPU computes f32 for both', async (t) => {
  const e = new Engine({ backend: 'cpu', threads: 1 });
  t.teardown(() => e.dispose());
  const c: Case = { B: 1, Sq: 20, Skv: 20, H: 2, G: 2, d: 16, mask: 'causal' };
  const x = attentionInputs(c, 7);
  const [a, b] = [attentionOp(e, c, x, 'f32'), attentionOp(e, c, x, 'bf16')];
  t.deepEqual(await b.out.readFloat32(), await a.out.readFloat32());
  const q = e.tensor(x.q, [1, 20, 2, 16]);
  t.throws(() => e.attention(q, q, q, { precision: 'fp8' as never }), { code: 'E_ARG', message: /precision/ });
});
