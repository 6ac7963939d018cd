// Parity of the engine's own Qwen2-VL (native/model/qwen2vl.cc, loaded from the tiny model's
// Hugging Face directory) against the reference fixtures: vision tower, every prefill logit, the
// greedy and seeded-sampled tokens of the understanding loop, and bf16 weight storage.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, Qwen2VL, ropePositions, type Checkpoint, type Engine } from '../../lib/index.ts';
import { patchOrder } from '../../lib/image.ts';
import { loadAddon } from '../../lib/native.ts';
import { assertClose, maxAbs } from '../helpers/reference.ts';
import { cpuRoundsBf16Activations } from '../helpers/engine.ts';
import { BACKENDS, backendFor, backendTest } from '../helpers/cuda.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const modelDir = `${fixtures}tiny-model/vlm`;

async function readI32(e: Engine, ck: Checkpoint, name: string): Promise<number[]> {
  return Array.from((await e.load(ck, name).read()) as Int32Array);
}

/** The fixture prompt's pixels, grid, ids and positions as engine inputs. */
async function prompt(m: Qwen2VL, file: string) {
  const e = m.engine;
  const fx = openCheckpoint(`${fixtures}${file}`);
  const ids = Int32Array.from(await readI32(e, fx, 'in.input_ids'));
  const [gt, gh, gw] = await readI32(e, fx, 'in.grid_thw');
  const grid = [gt, gh, gw] as const;
  const { positions } = ropePositions(ids, [grid], m.config);
  return { fx, ids, grid, pixels: e.load(fx, 'in.pixel_values'), positions };
}

test('vision tower: image embeddings equal the reference (fp32, 1e-4 relative)', async (t) => {
  const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 2 });
  t.teardown(() => m.dispose());
  const fx = openCheckpoint(`${fixtures}vlm_vision_tower.safetensors`);
  const [gt, gh, gw] = await readI32(m.engine, fx, 'in.grid_thw');
  const emb = m.encodeImage(m.engine.load(fx, 'in.pixel_values'), [gt, gh, gw]);
  assertClose(t, await emb.readFloat32(), await m.engine.load(fx, 'out.image_embeds').readFloat32(), 1e-4, 'image embeds');
  // the tower rotates each row by the patch order lib/image.ts owns (encodeImage passes it): the
  // engine checks the coordinates, and another order gives other embeddings
  const e = m.engine;
  const ck = openCheckpoint(modelDir);
  const { NativeQwen2VL } = loadAddon();
  const nat = new NativeQwen2VL(e.handle, ck.handle, NativeQwen2VL.readConfig(`${modelDir}/config.json`), 'f32');
  t.teardown(() => nat.dispose());
  ck.close();
  const px = e.own(e.load(fx, 'in.pixel_values'));
  const order = patchOrder(gh, gw, m.config.mergeSize);
  const code = (f: () => unknown) => (t.throws(f) as (Error & { code?: string }) | undefined)?.code; // the addon's own errors carry codes too
  t.is(code(() => nat.encodeImage(px, gt, gh, gw, order.subarray(1))), 'E_SHAPE');
  t.is(code(() => nat.encodeImage(px, gt, gh, gw, order.map((v, i) => (i === 0 ? gh : v)))), 'E_ARG');
  const raster = Int32Array.from({ length: 2 * gh * gw }, (_, i) => (i < gh * gw ? Math.floor(i / gw) : (i - gh * gw) % gw));
  const other = await e.wrap(nat.encodeImage(px, gt, gh, gw, raster)).readFloat32();
  t.notDeepEqual(other, await emb.readFloat32());
});

for (const backend of BACKENDS) {
  backendTest(backend, 'prefill: the logits of every prompt position equal the reference (fp32, 1e-4 relative)', async (t) => {
    const m = await Qwen2VL.load(modelDir, { backend: backendFor(backend), threads: 2 });
    t.teardown(() => m.dispose());
    const p = await prompt(m, 'vlm_logits.safetensors');
    const seq = m.newSequence();
    const logits = m.prefill(seq, p.ids, [m.encodeImage(p.pixels, p.grid)], p.positions, true);
    t.deepEqual(logits.shape, [p.ids.length, m.config.vocabSize]);
    assertClose(t, await logits.readFloat32(), await m.engine.load(p.fx, 'out.logits').readFloat32(), 1e-4, 'logits');
    t.is(seq.length, p.ids.length);
    // the last-row form (what answering uses) is the same row
    const last = await m.prefill(m.newSequence(), p.ids, [m.encodeImage(p.pixels, p.grid)], p.positions).readFloat32();
    const all = await logits.readFloat32();
    assertClose(t, last, all.subarray(all.length - last.length), 1e-6, 'last row');
  });
}

for (const backend of BACKENDS) {
  backendTest(backend, 'answering: greedy and seeded sampled tokens equal the reference; the text is their decoding', async (t) => {
    const m = await Qwen2VL.load(modelDir, { backend: backendFor(backend), threads: 2 });
    t.teardown(() => m.dispose());
    const e = m.engine;
    const gen = openCheckpoint(`${fixtures}vlm_generate.safetensors`);
    const meta = JSON.parse(gen.metadata().config);
    const image = openCheckpoint(`${fixtures}vlm_preprocess.safetensors`);
    const [H, W] = image.info('in.image').shape;
    const data = Uint8Array.from(Array.from((await e.load(image, 'in.image').read()) as Int32Array));
    const ask = async (opts: object) => {
      const ids: number[] = [];
      const text = await m.answer({ image: { width: W, height: H, data }, question: 'describe the image.', maxTokens: meta.max_new_tokens, onToken: (_, id) => ids.push(id), ...opts });
      return { text, ids };
    };
    const greedy = await readI32(e, gen, 'out.greedy');
    const g = await ask({});
    t.is(g.text, m.tokenizer.decode(greedy));
    const sw = meta.sampled_with;
    const sampled = await readI32(e, gen, 'out.sampled');
    const s = await ask({ temperature: sw.temperature, topK: sw.top_k, topP: sw.top_p, seed: sw.seed });
    t.is(s.text, m.tokenizer.decode(sampled));
    // token for token, through the model's prefill / decode, on a growing and on a reserved (recorded) sequence
    const p = await prompt(m, 'vlm_generate.safetensors');
    const { delta } = ropePositions(p.ids, [p.grid], m.config);
    t.true(delta < 0, 'the image makes the M-RoPE positions lag the token count');
    const tokens = async (opts: object, capacity?: number) => {
      const seq = m.newSequence(capacity, opts);
      let tok = m.sample(seq, m.prefill(seq, p.ids, [m.encodeImage(p.pixels, p.grid)], p.positions));
      const out: number[] = [];
      for (let step = 0; step < meta.max_new_tokens; step++) {
        // the sequence owns its position: the prefill's largest + 1, then one more per token
        t.is(seq.position, p.ids.length + delta + step);
        out.push(((await tok.read()) as Int32Array)[0]);
        tok = m.decode(seq, tok);
      }
      t.is(seq.length, p.ids.length + meta.max_new_tokens);
      seq.release();
      return out;
    };
    const drawn = { temperature: sw.temperature, topK: sw.top_k, topP: sw.top_p, seed: sw.seed };
    const room = p.ids.length + meta.max_new_tokens;
    t.deepEqual(await tokens({}), greedy);
    t.deepEqual(await tokens(drawn), sampled);
    t.deepEqual(await tokens({}, room), greedy);
    t.deepEqual(await tokens(drawn, room), sampled);
    t.true(g.ids.length > 0 && g.ids.every((id) => greedy.includes(id)));
    t.notDeepEqual(greedy, sampled);
  });
}

for (const backend of BACKENDS) {
  backendTest(backend, 'bf16 weights: logits match the bf16-weight reference and are no worse than an all-bf16 reference', async (t) => {
    const m = await Qwen2VL.load(modelDir, { backend: backendFor(backend), threads: 2, weights: 'bf16' });
    t.teardown(() => m.dispose());
    const p = await prompt(m, 'vlm_bf16.safetensors');
    const got = await m.prefill(m.newSequence(), p.ids, [m.encodeImage(p.pixels, p.grid)], p.positions, true).readFloat32();
    const load = (n: string) => m.engine.load(p.fx, n).readFloat32();
    const [f32, bf16w, bf16] = [await load('out.logits_f32'), await load('out.logits_bf16w'), await load('out.logits_bf16')];
    // same weights, fp32 activations: the engine's storage mode reproduces the bf16-weight model
    // (docs/reference.md#bf16-reference). Where GEMM inputs round to bf16 as well (CUDA tensor cores,
    // AMX or AVX512-BF16 CPUs) it may be as far from that model as the all-bf16 reference is, and no further: on the
    // H100 (27 Nov) the CUDA logits were 0.476 from it, 4.7x a fixed 1e-2 relative tolerance.
    const exact = m.engine.backend.name === 'cpu' && !cpuRoundsBf16Activations();
    const dist = (a: Float32Array, b: Float32Array) => maxAbs(a.map((x, i) => x - b[i]));
    if (exact) assertClose(t, got, bf16w, 1e-4, 'vs bf16-weight reference');
    else t.true(dist(got, bf16w) <= dist(bf16, bf16w), `vs bf16-weight reference: ${dist(got, bf16w)}, the all-bf16 reference is ${dist(bf16, bf16w)} away`);
    const err = (a: Float32Array) => maxAbs(a.map((x, i) => x - f32[i]));
    // Rounding GEMM inputs to bf16 is the all-bf16 reference's kind of error, not the same rounding: on the
    // H200 (4 Dec) the CUDA logits were 1.1853 from fp32 against the all-bf16 reference's 1.1773 (0.7%
    // further, argmax equal at 54 of 56 positions), so the bound allows a quarter more than that reference.
    const bound = exact ? err(bf16) : 1.25 * err(bf16);
    t.true(err(got) <= bound, `bf16 engine error vs fp32 ${err(got)} exceeds ${bound} (the all-bf16 reference's ${err(bf16)})`);
  });
}
