// Decode on a reserved sequence (preallocated K/V, native/model/qwen2vl.cc reserve/decode): the step,
// the token's draw included, is recorded once per sequence and replayed per token (a CUDA graph on the
// GPU), with the cache length, position and draw count as program inputs. Its logits and tokens must
// be exactly those of the step run op by op, and those of the growing (concatenated) cache the
// reference parity tests pin down.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, LatteError, LatteFlow, Qwen2VL, type Tensor } from '../../lib/index.ts';
import { assertClose } from '../helpers/reference.ts';
import { BACKENDS, backendFor, backendTest } from '../helpers/cuda.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const modelDir = `${fixtures}tiny-model/vlm`;
const STEPS = 12;

/** Text positions: t = h = w = index. */
const textPositions = (S: number) => new Int32Array(3 * S).map((_, i) => i % S);
const SAMPLED = { temperature: 0.9, topK: 20, topP: 0.95, seed: 5 };

/** Decoding from a text prompt (greedy, or drawn with `sampling`): every step's logits and token, on a sequence of `capacity` (none: growing). */
async function run(m: Qwen2VL, ids: Int32Array, capacity?: number, sampling?: typeof SAMPLED): Promise<{ logits: Float32Array[]; tokens: number[] }> {
  const S = ids.length;
  const seq = m.newSequence(capacity, sampling);
  let logits: Tensor = m.prefill(seq, ids, [], textPositions(S));
  let token = m.sample(seq, logits);
  const out: Float32Array[] = [];
  const tokens: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    out.push(await logits.readFloat32());
    tokens.push(((await token.read()) as Int32Array)[0]);
    logits.dispose();
    const next = m.decodeWithLogits(seq, token);
    token.dispose();
    ({ token, logits } = next);
  }
  out.push(await logits.readFloat32());
  tokens.push(((await token.read()) as Int32Array)[0]);
  logits.dispose();
  token.dispose();
  seq.release();
  return { logits: out, tokens };
}

for (const backend of BACKENDS) {
  backendTest(backend, 'decode: a reserved sequence replays one recorded step per token, with the op-by-op and growing-cache logits', async (t) => {
    const m = await Qwen2VL.load(modelDir, { backend: backendFor(backend), threads: 2 });
    t.teardown(() => m.dispose());
    const e = m.engine;
    const ids = Int32Array.from(m.tokenizer.encode('<|im_start|>user\ntell me about the red circle<|im_end|>\n<|im_start|>assistant\n'));
    const cap = ids.length + 4; // four decoded tokens fit; the fifth doubles the buffers once
    const growing = await run(m, ids);
    await e.fence();
    const before = e.stats();
    const replayed = await run(m, ids, cap);
    await e.fence();
    const after = e.stats();
    t.is(after.programsRecorded - before.programsRecorded, 2, 'one program, recorded again once the cache grew');
    t.is(after.replays - before.replays, STEPS, 'one replay per token');
    if (e.backend.name === 'cuda') {
      t.is(after.captureFailures, before.captureFailures, 'every step captured');
      t.is(after.capturedLaunches - before.capturedLaunches, STEPS - 2, "each program's run 1 is plain, then graph launches");
    }
    m.usePrograms(false);
    const eager = await run(m, ids, cap);
    m.usePrograms(true);
    t.is(e.stats().programsRecorded, after.programsRecorded, 'op by op records nothing');
    for (let i = 0; i <= STEPS; i++) {
      t.deepEqual(replayed.logits[i], eager.logits[i], `step ${i}: the replayed step gives the op-by-op logits exactly`);
      // same kernels, same key order: the reserved cache only changes where keys live
      if (e.backend.name === 'cpu') t.deepEqual(eager.logits[i], growing.logits[i], `step ${i}: reserved and growing caches agree exactly`);
      else assertClose(t, eager.logits[i], growing.logits[i], 1e-5, `step ${i}: reserved vs growing cache`);
    }
    t.deepEqual(replayed.tokens, eager.tokens, 'the recorded draw gives the op-by-op tokens');
    t.deepEqual(eager.tokens, growing.tokens, 'and the growing cache the same tokens');
    // a drawn sequence: the recorded draw takes the sequence's next step at every replay
    const drawn = await run(m, ids, cap, SAMPLED);
    m.usePrograms(false);
    const drawnEager = await run(m, ids, cap, SAMPLED);
    m.usePrograms(true);
    t.deepEqual(drawn.tokens, drawnEager.tokens, 'sampled: the replayed draws are the op-by-op ones');
    t.deepEqual(drawnEager.tokens, (await run(m, ids, undefined, SAMPLED)).tokens, 'sampled: and the growing cache draws the same');
    await e.fence();
    t.is(e.stats().bytesInUse, before.bytesInUse, 'released sequences return their cache and program memory');
  });
}

test('decode: one call per token draws what sampling the logits at the next step does (greedy and seeded)', async (t) => {
  const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 1 });
  t.teardown(() => m.dispose());
  const e = m.engine;
  const ids = Int32Array.from(m.tokenizer.encode('<|im_start|>user\nwhat colour is the square?<|im_end|>\n<|im_start|>assistant\n'));
  const S = ids.length;
  for (const sampling of [{}, SAMPLED]) {
    const seq = m.newSequence(S + STEPS, sampling);
    const first = m.prefill(seq, ids, [], textPositions(S));
    t.is(seq.position, S, 'text only: the next token sits at position S');
    let token = m.sample(seq, first);
    t.deepEqual(await token.read(), await e.sample(first, { ...sampling, step: 0 }).read(), 'the first draw is step 0');
    for (let step = 1; step <= STEPS; step++) {
      await e.fence();
      const before = e.stats();
      const { token: next, logits } = m.decodeWithLogits(seq, token);
      const after = e.stats();
      t.is(after.replays - before.replays, 1, 'one replay');
      t.is(after.opsEnqueued - before.opsEnqueued, 2, 'the position upload and the replay: no separate draw');
      t.deepEqual(await next.read(), await e.sample(logits, { ...sampling, step }).read(), `${JSON.stringify(sampling)}: token ${step} is the draw at step ${step}`);
      t.is(seq.position, S + step);
      token = next;
    }
    seq.release();
  }
  // the sequence's settings are checked and fixed before its prefill
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => m.newSequence(8, { temperature: -1 })), 'E_ARG');
  t.is(code(() => m.newSequence(8, { topP: 0 })), 'E_ARG');
  t.is(code(() => m.newSequence(undefined, { topK: -1 })), 'E_ARG');
  const seq = m.newSequence(S + 1);
  const logits = m.prefill(seq, ids, [], textPositions(S));
  t.is(code(() => m.sample(seq, m.prefill(m.newSequence(), ids, [], textPositions(S), true))), 'E_SHAPE', 'one row of logits');
  t.is(m.sample(seq, logits).shape.join(), '1');
  seq.release();
});

test('decode: reserved capacity is checked (E_ARG); a reserved sequence stops at max_position_embeddings', async (t) => {
  const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 1 });
  t.teardown(() => m.dispose());
  const e = m.engine;
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => m.newSequence(0)), 'E_ARG');
  t.is(code(() => m.newSequence(1.5)), 'E_ARG');
  t.is(code(() => m.newSequence(m.config.maxPositions + 1)), 'E_ARG');
  const ids = Int32Array.from(m.tokenizer.encode('hello there'));
  const S = ids.length;
  const pos = textPositions(S);
  t.is(S, 4, 'the prompt the capacities below are sized for');
  t.is(code(() => m.prefill(m.newSequence(), ids, [], pos.subarray(1))), 'E_SHAPE', 'positions [3, S]');
  t.is(code(() => m.prefill(m.newSequence(), ids, [], pos.map((p) => p - 1))), 'E_ARG', 'positions >= 0');
  // the 4-token prompt outgrows a capacity of 3 (doubled to 6), the third decoded token doubles it
  // again (12): the logits stay those of a growing cache, and the growth records the step again
  const grown = m.newSequence(S - 1);
  const plain = m.newSequence();
  const logits = [m.prefill(grown, ids, [], pos), m.prefill(plain, ids, [], pos)];
  const token = e.sample(logits[1], { step: 0 });
  t.is(code(() => m.decode(grown, e.tensor(new Float32Array(1), [1]))), 'E_SHAPE'); // not a token id
  const recorded = e.stats().programsRecorded;
  for (let i = 0; i <= S + 1; i++) {
    t.deepEqual(await logits[0].readFloat32(), await logits[1].readFloat32(), `token ${i}: reserved (grown) vs growing cache`);
    logits.splice(0, 2, m.decodeWithLogits(grown, token).logits, m.decodeWithLogits(plain, token).logits);
  }
  t.is(e.stats().programsRecorded - recorded, 2, 'recorded at the first token and again after the doubling to 12');
  grown.release();
  plain.release();
  t.is(code(() => m.decode(grown, token)), 'E_ARG'); // released: no prefill any more

  // a model whose context ends two tokens after the prompt
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-decode-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of fs.readdirSync(modelDir)) fs.copyFileSync(path.join(modelDir, f), path.join(dir, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: S + 2 }));
  const small = await Qwen2VL.load(dir, { engine: e });
  t.teardown(() => small.dispose());
  const full = small.newSequence(S + 1);
  const tok = e.sample(small.prefill(full, ids, [], pos), { step: 0 });
  await small.decode(full, tok).read();
  await small.decode(full, tok).read(); // grows to the context's end
  t.is(code(() => small.decode(full, tok)), 'E_ARG');
  full.release();
});

for (const programs of [true, false])
  test(`decode: a step that failed leaves a reserved sequence unusable (E_NOT_COMPUTED), not silently short of a row (${programs ? 'replayed' : 'op by op'})`, async (t) => {
    const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 1 });
    t.teardown(() => m.dispose());
    m.usePrograms(programs);
    const e = m.engine;
    const ids = Int32Array.from(m.tokenizer.encode('hello there'));
    const S = ids.length;
    const pos = textPositions(S);
    const seq = m.newSequence(S + 8);
    const token = m.sample(seq, m.prefill(seq, ids, [], pos));
    await m.decode(seq, token).read();
    const bad = e.tensor(Int32Array.from([m.config.vocabSize + 5]), [1], 'i32');
    t.is((await t.throwsAsync(m.decode(seq, bad).read(), { instanceOf: LatteError }))?.code, 'E_INDEX');
    t.is((await t.throwsAsync(m.decode(seq, token).read(), { instanceOf: LatteError }))?.code, 'E_NOT_COMPUTED');
    seq.release();
    // a fresh sequence is unaffected
    const again = m.newSequence(S + 2);
    const tok2 = m.sample(again, m.prefill(again, ids, [], pos));
    const next = m.decodeWithLogits(again, tok2);
    t.deepEqual([next.token.shape, next.logits.shape], [[1], [1, m.config.vocabSize]]);
    await e.fence();
    again.release();
  });

test('decode: the model owns its recorded steps (dispose frees the weights they hold); in-place ops stay internal', async (t) => {
  const e = new Engine({ backend: 'cpu', threads: 1 });
  t.teardown(() => e.dispose());
  await e.fence();
  const base = e.stats().bytesInUse;
  const m = await Qwen2VL.load(modelDir, { engine: e });
  const ids = Int32Array.from(m.tokenizer.encode('hello there'));
  const S = ids.length;
  const seq = m.newSequence(S + 4);
  const first = m.prefill(seq, ids, [], textPositions(S));
  const token = m.sample(seq, first);
  first.dispose();
  m.decode(seq, token).dispose();
  await e.fence();
  const cacheBytes = e.stats().bytesInUse;
  await m.dispose(); // the sequence is never released: only its K/V may stay
  await e.fence();
  t.true(e.stats().bytesInUse - base < (cacheBytes - base) / 2, `the weights went with the model (${e.stats().bytesInUse - base} of ${cacheBytes - base} bytes left)`);
  t.is(t.throws(() => m.decode(seq, token), { instanceOf: LatteError })?.code, 'E_DISPOSED');
  seq.release();
  token.dispose();
  await e.fence();
  t.is(e.stats().bytesInUse, base, 'and the K/V with the sequence');
  // JavaScript tensors stay immutable: the in-place op is refused from JavaScript
  const raw = e.handle as unknown as { op(name: string, inputs: unknown[], attrs: object): unknown };
  const dst = e.tensor(new Float32Array(8), [1, 4, 2]);
  const err = t.throws(() => raw.op('write_rows', [dst.handle, e.tensor(new Float32Array(2), [1, 1, 2]).handle, e.tensor(Int32Array.from([0]), [1], 'i32').handle], {}));
  t.regex(String(err?.message), /internal/);
});

test('the generation stream refuses a sequence reserved for answering (its prompt K/V come from encodePrompt)', async (t) => {
  const lf = await LatteFlow.load(fileURLToPath(new URL('../fixtures/tiny-model', import.meta.url)), { backend: 'cpu', threads: 1 });
  t.teardown(() => lf.dispose());
  const e = lf.engine;
  const ids = Int32Array.from(lf.vlm.tokenizer.encode('hello there'));
  const S = ids.length;
  const seq = lf.vlm.newSequence(S + 1);
  lf.vlm.prefill(seq, ids, [], textPositions(S)).dispose();
  const c = lf.generator.config;
  const x = e.tensor(new Float32Array(c.latentChannels * c.latentSize[0] * c.latentSize[1]), [1, c.latentChannels, ...c.latentSize]);
  t.is(t.throws(() => lf.generator.velocity(x, 0.5, 0, seq, null, 1), { instanceOf: LatteError })?.code, 'E_ARG');
  seq.release();
});
