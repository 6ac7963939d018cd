/**
 * The shipped shapes-world model (issue 6), in one run:
 *  1. K = 4 vs its vanilla twin (K = 1) at the same step count: sampling time per image (target >= 3x);
 *     and K = 4's sampling loop with recorded group programs (the default) vs every op enqueued afresh.
 *  2. The engine vs the PyTorch reference pipeline (benchmarks/reference-shapes.py) on the same model and
 *     threads: per image and per answer (target >= 3x).
 *  3. VLM decode per token: the recorded step on a reserved cache vs op by op vs a growing cache.
 *
 *   node --import=tsx benchmarks/shapes.ts [--threads 1,2] [--quick]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatteFlow } from '../lib/index.ts';
import { example } from '../lib/shapes/world.ts';
import { decodeMsPerToken, median, nowMs, runAsScript, type Row } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PROMPT = 'a red circle to the left of a blue square';

/** Median ms per image at `steps`, and the sampling loop alone: an image at 2 x steps minus one at steps
 * (the prompt encoding and the VAE decode, the same in both, cancel). */
async function timeImages(dir: string, threads: number, steps: number, reps: number): Promise<{ image: number; sampling: number }> {
  const lf = await LatteFlow.load(dir, { backend: 'cpu', threads });
  await lf.generateImage({ prompt: PROMPT, steps });
  const at = async (n: number) => {
    const t: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = nowMs();
      await lf.generateImage({ prompt: PROMPT, steps: n, seed: r });
      t.push(nowMs() - t0);
    }
    return median(t);
  };
  const image = await at(steps);
  const double = await at(2 * steps);
  await lf.dispose();
  return { image, sampling: double - image };
}

/** The sampling loop (an image at 2 x steps minus one at steps) with recorded group programs and with
 * every op enqueued afresh, alternating per repetition so both see the same machine state. */
async function timeProgramsVsEager(dir: string, threads: number, steps: number, reps: number): Promise<{ programs: number; eager: number }> {
  const lf = await LatteFlow.load(dir, { backend: 'cpu', threads });
  const image = async (n: number, seed: number) => {
    const t0 = nowMs();
    await lf.generateImage({ prompt: PROMPT, steps: n, seed });
    return nowMs() - t0;
  };
  await image(steps, 0);
  const loops: Record<'programs' | 'eager', number[]> = { programs: [], eager: [] };
  for (let r = 0; r < 2 * reps; r++)
    for (const mode of ['programs', 'eager'] as const) {
      lf.generator.usePrograms(mode === 'programs');
      loops[mode].push((await image(2 * steps, r)) - (await image(steps, r)));
    }
  await lf.dispose();
  return { programs: median(loops.programs), eager: median(loops.eager) };
}

/** ms per decoded token (greedy, the next step enqueued before each read) after a text prompt, three ways
 * in alternation: a reserved cache with its recorded step replayed (what answer() does), the same cache
 * op by op, and a cache that grows by concatenation. */
async function timeDecode(dir: string, threads: number, reps: number): Promise<Record<'replayed' | 'eager' | 'growing', number>> {
  const lf = await LatteFlow.load(dir, { backend: 'cpu', threads });
  const m = lf.vlm;
  const ids = Int32Array.from(m.tokenizer.encode(`<|im_start|>user\n${PROMPT}: what colour is the circle?<|im_end|>\n<|im_start|>assistant\n`));
  const [S, N] = [ids.length, 32];
  const perToken = (capacity?: number) => decodeMsPerToken(m, ids, N, capacity);
  const t: Record<'replayed' | 'eager' | 'growing', number[]> = { replayed: [], eager: [], growing: [] };
  await perToken(S + N);
  for (let r = 0; r < reps; r++) {
    t.replayed.push(await perToken(S + N));
    m.usePrograms(false);
    t.eager.push(await perToken(S + N));
    m.usePrograms(true);
    t.growing.push(await perToken());
  }
  await lf.dispose();
  return { replayed: median(t.replayed), eager: median(t.eager), growing: median(t.growing) };
}

async function timeAnswer(dir: string, threads: number, reps: number): Promise<number> {
  const lf = await LatteFlow.load(dir, { backend: 'cpu', threads });
  const ex = example(31337, 0);
  const ask = () => lf.answer({ image: { width: 64, height: 64, data: ex.image }, question: ex.qa[0][0], maxTokens: 16 });
  await ask();
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = nowMs();
    await ask();
    t.push(nowMs() - t0);
  }
  await lf.dispose();
  return median(t);
}

await runAsScript(import.meta.url, async (o): Promise<Row[]> => {
  const threads = o.threads ?? [1, 2];
  const steps = 20;
  const reps = o.quick ? 3 : 7;
  const rows: Row[] = [];
  const k4 = path.join(root, 'models/shapes');
  const k1 = path.join(root, 'models/shapes-vanilla');
  const ref = spawnSync('/usr/bin/python3', [path.join(root, 'benchmarks/reference-shapes.py'), '--threads', threads.join(','), '--reps', String(o.quick ? 3 : 5), '--steps', String(steps)], { encoding: 'utf8' });
  const refs = ref.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { threads: number; image_ms: number; answer_ms: number });
  if (ref.status !== 0) console.error(ref.stderr);
  for (const t of threads) {
    const [m4, m1] = [await timeImages(k4, t, steps, reps), await timeImages(k1, t, steps, reps)];
    const g4 = m4.image;
    rows.push({ bench: 'shapes K=4 vs vanilla K=1 (sampling loop)', case: `${steps} steps, ${t}t`, figure: `${(m1.sampling / m4.sampling).toFixed(2)}x (K=4 ${m4.sampling.toFixed(1)} ms, K=1 ${m1.sampling.toFixed(1)} ms)`, target: '>= 3x' });
    const pe = await timeProgramsVsEager(k4, t, steps, reps);
    rows.push({ bench: 'shapes K=4 sampling loop: programs vs eager ops', case: `${steps} steps, ${t}t, alternating`, figure: `${(pe.eager / pe.programs).toFixed(2)}x (programs ${pe.programs.toFixed(1)} ms, eager ${pe.eager.toFixed(1)} ms)` });
    rows.push({ bench: 'shapes K=4 vs vanilla K=1 (whole image)', case: `${steps} steps, ${t}t`, figure: `${(m1.image / g4).toFixed(2)}x (K=4 ${g4.toFixed(1)} ms, K=1 ${m1.image.toFixed(1)} ms)`, target: '' });
    const dec = await timeDecode(k4, t, reps);
    rows.push({ bench: 'shapes VLM decode, per token: recorded step vs op by op', case: `32 tokens, reserved cache, ${t}t`, figure: `${(dec.eager / dec.replayed).toFixed(2)}x (replayed ${dec.replayed.toFixed(2)} ms, op by op ${dec.eager.toFixed(2)} ms)` });
    rows.push({ bench: 'shapes VLM decode, per token: reserved cache vs growing cache', case: `32 tokens, ${t}t`, figure: `${(dec.growing / dec.replayed).toFixed(2)}x (reserved + replayed ${dec.replayed.toFixed(2)} ms, growing op by op ${dec.growing.toFixed(2)} ms)` });
    const ans = await timeAnswer(k4, t, reps);
    const r = refs.find((x) => x.threads === t);
    if (r) {
      rows.push({ bench: 'shapes engine vs PyTorch reference, per image', case: `${steps} steps, ${t}t`, figure: `${(r.image_ms / g4).toFixed(1)}x (engine ${g4.toFixed(1)} ms, reference ${r.image_ms.toFixed(1)} ms)`, target: '>= 3x' });
      rows.push({ bench: 'shapes engine vs PyTorch reference, per answer', case: `16 tokens max, ${t}t`, figure: `${(r.answer_ms / ans).toFixed(1)}x (engine ${ans.toFixed(1)} ms, reference ${r.answer_ms.toFixed(1)} ms)`, target: '>= 3x' });
    }
  }
  return rows;
});
