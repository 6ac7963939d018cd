/**
 * The understanding path (issue 4), in one run:
 *  1. Real-scale Qwen2-VL-2B shapes with random weights: image encode (448x448 -> 1024 patches),
 *     prefill (256 text tokens) and decode (per token, after a 64-token prompt), for f32 and bf16
 *     weights at 1 and 2 threads. Two checkpoints (1 and 2 decoder layers / vision blocks) are
 *     measured in interleaved rounds; the per-layer cost is their difference, scaled to the real
 *     28 layers / 32 vision blocks. Decode is compared with the DRAM roofline measured in the same
 *     run (bytes of every weight read once per token / streaming-read bandwidth).
 *  2. The engine vs the PyTorch reference (benchmarks/reference-vlm.py) on the tiny model: one
 *     answer of exactly N tokens to the same image and question, same threads.
 *
 *   node --import=tsx benchmarks/understanding.ts [--threads 1,2] [--quick] [--skip real,reference]
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expandImagePads, Engine, preprocessImage, Qwen2VL, renderChat, ropePositions, type Tensor } from '../lib/index.ts';
import { writeRandomQwen2VLIfMissing } from '../lib/bench/random-qwen2vl.ts';
import { median, nowMs, runAsScript, type Row } from './common.ts';
import { measureMembw } from './membw.ts';
import { referenceVlm } from './reference.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REAL = { layers: 28, visionDepth: 32, D: 1536, F: 8960, H: 12, G: 2, V: 151936 };
const args = process.argv.slice(2);
const skip = new Set((args[args.indexOf('--skip') + 1] ?? '').split(','));

/** Greedy decode of `n` tokens after the prefill, the next step enqueued before each read. */
async function decodeTokens(m: Qwen2VL, seq: ReturnType<Qwen2VL['newSequence']>, first: Tensor, n: number): Promise<number[]> {
  const ids: number[] = [];
  let tok = first;
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? m.decode(seq, tok) : undefined;
    ids.push(((await tok.read()) as Int32Array)[0]);
    if (next) tok = next;
  }
  return ids;
}

function textPrompt(m: Qwen2VL, S: number, seed: number) {
  const ids = Int32Array.from({ length: S }, (_, i) => (seed * 7919 + i * 104729) % 250); // valid in any vocab
  return { ids, positions: new Int32Array(3 * S).map((_, i) => i % S) };
}

interface Phase {
  encode: number;
  prefill: number;
  decode: number;
}

async function measurePhases(m: Qwen2VL, quick: boolean): Promise<Phase> {
  const e = m.engine;
  const side = 448;
  const data = new Uint8Array(side * side * 3).map((_, i) => (i * 131) % 251);
  const pv = preprocessImage({ width: side, height: side, data }, m.preprocessor);
  const pixels = e.tensor(pv.data, pv.shape);
  let t0 = nowMs();
  await m.encodeImage(pixels, pv.grid).read();
  const encode = nowMs() - t0;
  const S = quick ? 64 : 256;
  const p = textPrompt(m, S, 1);
  t0 = nowMs();
  await m.prefill(m.newSequence(), p.ids, [], p.positions).read();
  const prefill = nowMs() - t0;
  const q = textPrompt(m, 64, 2);
  const seq = m.newSequence();
  const first = m.sample(seq, m.prefill(seq, q.ids, [], q.positions));
  await first.read();
  const n = quick ? 6 : 16;
  t0 = nowMs();
  await decodeTokens(m, seq, first, n);
  const decode = (nowMs() - t0) / n;
  seq.release();
  return { encode, prefill, decode };
}

/** Bytes of every weight a decode step reads (28 layers + the LM head), at `bytes` per parameter. */
function decodeWeightBytes(bytes: number): number {
  const { D, F, H, G, V, layers } = REAL;
  const d = D / H;
  const layer = D * H * d + 2 * D * G * d + H * d * D + 3 * D * F;
  return (layers * layer + V * D) * bytes;
}

async function realScale(threads: number[], quick: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  const dirs = [1, 2].map((n) => path.join(os.tmpdir(), `latte-flow-real-shape-${n}l`));
  const cfgs = [];
  for (const [i, dir] of dirs.entries()) cfgs.push(await writeRandomQwen2VLIfMissing(dir, { layers: i + 1, visionDepth: i + 1, dtype: 'bf16' }));
  const S = quick ? 64 : 256;
  const rounds = quick ? 2 : 3;
  for (const t of threads) {
    const bw = await measureMembw(t, { mib: quick ? 256 : 1024 });
    const perDtype: Record<string, Phase> = {};
    for (const weights of ['f32', 'bf16'] as const) {
      const engine = new Engine({ backend: 'cpu', threads: t });
      const models = [];
      for (const dir of dirs) models.push(await Qwen2VL.load(dir, { engine, weights }));
      await measurePhases(models[0], true); // warm-up: primitives, first-touch of packed weights
      await measurePhases(models[1], true);
      const got: Phase[][] = [[], []];
      for (let r = 0; r < rounds; r++) for (const i of [0, 1]) got[i].push(await measurePhases(models[i], quick));
      const med = (i: number, k: keyof Phase) => median(got[i].map((p) => p[k]));
      // f(n) = base + n * perLayer, measured at n = 1 and 2; the real model has 28 layers / 32 blocks
      const full = (k: keyof Phase, real: number) => med(0, k) + (real - 1) * Math.max(0, med(1, k) - med(0, k));
      const phase: Phase = { encode: full('encode', REAL.visionDepth), prefill: full('prefill', REAL.layers), decode: full('decode', REAL.layers) };
      perDtype[weights] = phase;
      const roofline = (decodeWeightBytes(weights === 'f32' ? 4 : 2) / (bw.gbpsMedian * 1e9)) * 1e3;
      const c = `${weights}, ${t}t`;
      rows.push({ bench: 'vlm-2B image encode', case: c, figure: `${(phase.encode / 1e3).toFixed(2)} s (448x448, 1024 patches; 1 block ${(med(1, 'encode') - med(0, 'encode')).toFixed(0)} ms)` });
      rows.push({ bench: 'vlm-2B prefill', case: c, figure: `${((S / phase.prefill) * 1e3).toFixed(1)} tok/s (${S} tokens, ${(phase.prefill / 1e3).toFixed(2)} s)` });
      rows.push({ bench: 'vlm-2B decode', case: c, figure: `${(1e3 / phase.decode).toFixed(2)} tok/s (${phase.decode.toFixed(0)} ms/token)` });
      rows.push({
        bench: 'vlm-2B decode vs DRAM roofline',
        case: c,
        figure: `${(roofline / phase.decode).toFixed(2)}x (roofline ${roofline.toFixed(0)} ms at ${bw.gbpsMedian.toFixed(1)} GB/s)`,
        target: '>= 0.8x',
      });
      for (const m of models) await m.dispose();
      await engine.dispose();
    }
    rows.push({ bench: 'vlm-2B decode bf16 vs f32', case: `${t}t`, figure: `${(perDtype.f32.decode / perDtype.bf16.decode).toFixed(2)}x`, target: '>= 1.8x' });
  }
  return rows;
}

/** One answer of exactly n tokens, as the answer loop runs it minus the stop check. */
async function engineAnswer(m: Qwen2VL, image: { width: number; height: number; data: Uint8Array }, question: string, n: number): Promise<number> {
  const t0 = nowMs();
  const e = m.engine;
  const pv = preprocessImage(image, m.preprocessor);
  const text = expandImagePads(renderChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }]), [pv.grid], m.config.mergeSize);
  const ids = Int32Array.from(m.tokenizer.encode(text));
  const { positions } = ropePositions(ids, [pv.grid], m.config);
  const seq = m.newSequence();
  const emb = m.encodeImage(e.tensor(pv.data, pv.shape), pv.grid);
  const first = m.sample(seq, m.prefill(seq, ids, [emb], positions));
  const out = await decodeTokens(m, seq, first, n);
  m.tokenizer.decode(out);
  seq.release();
  return nowMs() - t0;
}

async function versusReference(threads: number[], quick: boolean): Promise<Row[]> {
  const n = 16;
  const reps = quick ? 3 : 9;
  const ref = await referenceVlm({ tokens: n, reps });
  const { openCheckpoint } = await import('../lib/index.ts');
  const rows: Row[] = [];
  for (const t of threads) {
    const m = await Qwen2VL.load(path.join(root, 'test/fixtures/tiny-model/vlm'), { backend: 'cpu', threads: t });
    const ck = openCheckpoint(path.join(root, 'test/fixtures/vlm_preprocess.safetensors'));
    const [height, width] = ck.info('in.image').shape;
    const data = Uint8Array.from((await m.engine.load(ck, 'in.image').read()) as Int32Array);
    const image = { width, height, data };
    await engineAnswer(m, image, 'describe the image.', n);
    const times: number[] = [];
    for (let r = 0; r < reps; r++) times.push(await engineAnswer(m, image, 'describe the image.', n));
    await m.dispose();
    const ours = median(times);
    const theirs = ref.find((r) => r.threads === t);
    rows.push({
      bench: 'vlm-tiny answer vs PyTorch reference',
      case: `${t}t, ${n} tokens`,
      figure: theirs ? `${(theirs.answerMs / ours).toFixed(1)}x (engine ${ours.toFixed(2)} ms, reference ${theirs.answerMs.toFixed(1)} ms)` : `engine ${ours.toFixed(2)} ms (no reference at ${t}t)`,
      target: '>= 3x',
    });
  }
  return rows;
}

export async function runUnderstandingBench(threads: number[], quick: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  if (!skip.has('reference')) rows.push(...(await versusReference(threads, quick)));
  if (!skip.has('real')) rows.push(...(await realScale(threads, quick)));
  return rows;
}

await runAsScript(import.meta.url, (o) => runUnderstandingBench(o.threads ?? [1, 2], o.quick));
