// The CPU attention's tiled path (native/cpu/flash_attention.cc: runs of 16+ query rows, d a multiple
// of 8) against the float64 definition (docs/model.md section 3): lengths that are not multiples of
// the query (48) or key (128) blocks, every register-tile width (d = 8 .. 128), masks whose visible
// range ends inside a block, GQA, a cache with past > 0, the TCRA residual and the returned logits
// (masked entries exactly -inf); prompt_len padding is in attention.test.ts. Rows are summed in
// another order than the reference (online softmax, scale folded into q): bounded, not bit-equal.
import test, { type ExecutionContext } from 'ava';
import { cpuEngine } from '../helpers/engine.ts';
import { attentionInputs, attentionOp, attentionRef, type AttentionCase } from '../helpers/naive-ops.ts';
import { assertClose } from '../helpers/reference.ts';

const RTOL = 2e-6;

/** Masked logits exactly -inf where the reference has -inf; the finite ones within RTOL. */
function assertLogits(t: ExecutionContext, got: Float32Array, want: Float64Array, label: string) {
  const fin: number[] = [];
  let masked = 0;
  for (let i = 0; i < want.length; i++) {
    if (want[i] !== -Infinity) fin.push(i);
    else if (got[i] === -Infinity) masked++;
    else return t.fail(`${label}: masked logit ${i} is ${got[i]}, not -inf`);
  }
  assertClose(t, fin.map((i) => got[i]), fin.map((i) => want[i]), RTOL, label);
  return masked;
}

const CASES: (AttentionCase & { cap?: number })[] = [
  { B: 1, Sq: 1100, Skv: 1100, H: 2, G: 2, d: 80, mask: 'none' }, // a vision block, 23 query blocks, 9 key blocks
  { B: 1, Sq: 300, Skv: 300, H: 3, G: 3, d: 16, mask: 'none' }, // the shipped vision tower's head dim
  { B: 2, Sq: 200, Skv: 200, H: 2, G: 1, d: 64, mask: 'none' }, // GQA, B > 1
  { B: 1, Sq: 161, Skv: 161, H: 4, G: 2, d: 128, mask: 'causal' }, // prefill: key blocks skipped past the diagonal
  { B: 1, Sq: 70, Skv: 250, cap: 300, H: 4, G: 2, d: 32, mask: 'causal' }, // a prefill after 180 cached keys
  { B: 2, Sq: 150, Skv: 150, H: 2, G: 1, d: 64, mask: 'prefix_causal', prefixLen: 100 }, // text then image
  { B: 1, Sq: 100, Skv: 260, H: 2, G: 2, d: 32, mask: 'prefix_causal', prefixLen: 200 }, // a block on both sides of the prefix
  { B: 2, Sq: 130, Skv: 175, H: 4, G: 2, d: 128, mask: 'none', imageCol0: 45, residual: true }, // generator rows: TCRA
  { B: 1, Sq: 140, Skv: 200, H: 2, G: 1, d: 48, mask: 'causal', imageCol0: 30, residual: true }, // -inf logits, 32 + 16 wide
  { B: 1, Sq: 64, Skv: 150, H: 2, G: 2, d: 40, mask: 'none', imageCol0: 150 - 64, residual: false }, // a group's first layer
  { B: 1, Sq: 50, Skv: 50, H: 2, G: 2, d: 24, mask: 'none', scale: 0.3 }, // 16 + 8 wide, a given scale
  { B: 1, Sq: 40, Skv: 40, H: 2, G: 1, d: 8, mask: 'causal' }, // 8 wide
  { B: 1, Sq: 60, Skv: 60, H: 2, G: 2, d: 12, mask: 'causal' }, // d not a multiple of 8: the row path
];

test('tiled attention: long runs, every tile width, masks, GQA, past, TCRA residual and logits', async (t) => {
  const e1 = cpuEngine(1);
  const e2 = cpuEngine(2);
  t.teardown(async () => {
    await e1.dispose();
    await e2.dispose();
  });
  let seed = 300;
  for (const c of CASES) {
    const x = attentionInputs(c, seed);
    seed = x.seed;
    const want = attentionRef(c, x.q, x.k, x.v, x.res, x.gate);
    const label = JSON.stringify(c);
    const one = attentionOp(e1, c, x);
    const two = attentionOp(e2, c, x);
    const out = await one.out.readFloat32();
    assertClose(t, out, want.out, RTOL, `out ${label}`);
    // each (batch, head, query block) is one thread's work, summed in one order: threads do not matter
    t.deepEqual(await two.out.readFloat32(), out, `1 vs 2 threads ${label}`);
    if (one.logits) {
      const masked = assertLogits(t, await one.logits.readFloat32(), want.logits, `logits ${label}`);
      if (c.mask === 'causal') t.true(masked > 0, `${label}: some image columns are masked`);
    }
  }
});
