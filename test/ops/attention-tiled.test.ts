// The CPU attention's tiled path (native/cpu/flash_attention.cc: runs of 16+ query rows, d a multiple
// of 8) against the float64 definition (docs/model.md section 3): lengths that are not multiples of
// the query (48) or key (128) blocks, every register-tile width (d = 8 .. 128), masks whose visible
// range ends inside a block, GQA, a cache with past > 0, prompt_len padding, the TCRA residual and the
// returned logits (masked entries exactly -inf). Rows are summed in another order than the reference
// (online softmax, scale folded into q), so values are bounded, not bit-equal.
import test, { type ExecutionContext } from 'ava';
import { cpuEngine } from '../helpers/engine.ts';
import { attentionInputs, attentionRef, paddedPromptCase, padRows, type AttentionCase } from '../helpers/naive-ops.ts';
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
    const { B, Sq, Skv, H, G, d } = c;
    const { q, k, v, res, gate, Ni, seed: next } = attentionInputs(c, seed);
    seed = next;
    const want = attentionRef(c, q, k, v, res, gate);
    const cap = c.cap ?? Skv;
    const run = (e: typeof e1) =>
      e.attention(e.tensor(q, [B, Sq, H, d]), e.tensor(padRows(k, B, Skv, cap, G * d), [B, cap, G, d]), e.tensor(padRows(v, B, Skv, cap, G * d), [B, cap, G, d]), {
        mask: c.mask,
        prefixLen: c.prefixLen,
        imageCol0: c.imageCol0,
        scale: c.scale,
        returnLogits: c.imageCol0 !== undefined,
        residual: res ? e.tensor(res, [B, H, Sq, Ni]) : undefined,
        gate: gate ? e.tensor(gate, [B, H]) : undefined,
        past: c.cap ? e.tensor(Int32Array.from([Skv - Sq]), [1], 'i32') : undefined,
      });
    const label = JSON.stringify(c);
    const one = run(e1);
    const two = run(e2);
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

test('tiled attention with promptLen: padded rows equal each row alone, unpadded', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const lens = [5, 40, 1, 40];
  const [N, H, G, d] = [70, 4, 2, 32];
  const { q, k, v, res, gate, pmax, Skv, rowOut, rowLogits } = paddedPromptCase(lens, N, H, G, d, 77);
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
    assertClose(t, o.subarray(b * N * H * d, (b + 1) * N * H * d), rowOut[b], RTOL, `out row ${b} (prompt ${lens[b]})`);
    assertClose(t, l.subarray(b * H * N * N, (b + 1) * H * N * N), rowLogits[b], RTOL, `logits row ${b}`);
  }
});
