/**
 * The generation path (issue 5), in one run:
 *  1. Expert-group step vs full-depth step (K = 2 and 4, CFG on, 64 image tokens): the group step
 *     should cost <= 1.10 x (1/K) of the full-depth one.
 *  2. Fixed per-step overhead (time embedding, patch embed, head, CFG combine, the Euler update,
 *     TypeScript and N-API): T(n layers) = a + b n fitted over n = 1..L; a / T(group) <= 5%.
 *  3. End to end on the smallest shipped model (test/fixtures/tiny-model, K = 2): generateImage
 *     at full depth vs grouped, 40 steps; and the 40-step sampling loop of the K = 4 model: >= 0.85 K.
 *  4. Real scale (Qwen2-VL-2B widths, 28 layers, K = 4, 64 image tokens, random weights): seconds per
 *     step and per image (40 steps), f32 and bf16 weights.
 * Prompt K/V are random tensors assigned to a sequence (16 tokens; the null prompt 4), so no VLM is
 * needed except in part 3.
 *
 *   node --import=tsx benchmarks/generation.ts [--threads 1,2] [--quick] [--skip ratios,e2e,real]
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatteFlow, timeSchedule } from '../lib/index.ts';
import { openGenerator, stepMs, type SteppableGenerator as Model } from '../lib/bench/generation.ts';
import { REAL_SCALE, type RandomGeneratorOptions } from '../lib/bench/random-generator.ts';
import { median, nowMs, runAsScript, type Row } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const skip = new Set((args[args.indexOf('--skip') + 1] ?? '').split(','));

const SMALL: Omit<RandomGeneratorOptions, 'layers' | 'groups'> = { hidden: 256, heads: 4, kvHeads: 2, intermediate: 704, latentChannels: 4, latentSize: [8, 8], mropeSection: [8, 12, 12] };

/** The random generator in `dir`, written first (lib/bench/generation.ts, shared with `latte-flow bench`). */
const makeModel = (dir: string, o: RandomGeneratorOptions, threads: number, weights: 'f32' | 'bf16'): Promise<Model> => openGenerator(dir, { threads, weights, write: o });

async function ratios(threads: number, quick: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  for (const K of [2, 4]) {
    const L = 8;
    const m = await makeModel(path.join(os.tmpdir(), `latte-flow-gen-small-k${K}`), { ...SMALL, layers: L, groups: K }, threads, 'f32');
    const [h, w] = m.gen.config.latentSize;
    const x = m.e.noise([1, m.gen.config.latentChannels, h, w], 1);
    const M = L / K;
    const reps = quick ? 5 : 15;
    for (let i = 0; i < 3; i++) await stepMs(m, x, 0.5, 0, L); // warm-up
    const group: number[] = [];
    const full: number[] = [];
    const byN: number[][] = Array.from({ length: L + 1 }, () => []);
    for (let r = 0; r < reps; r++) {
      const k = r % K;
      group.push(await stepMs(m, x, (k + 0.5) / K, k * M, (k + 1) * M)); // interleaved A/B rounds
      full.push(await stepMs(m, x, 0.5, 0, L));
      for (let n = 1; n <= L; n++) byN[n].push(await stepMs(m, x, 0.5, 0, n));
    }
    const g = median(group);
    const f = median(full);
    // least squares of T(n) = a + b n over the medians
    const ns = byN.map((_, n) => n).slice(1);
    const ts = ns.map((n) => median(byN[n]));
    const mn = ns.reduce((a, b) => a + b, 0) / ns.length;
    const mt = ts.reduce((a, b) => a + b, 0) / ts.length;
    const b = ns.reduce((s, n, i) => s + (n - mn) * (ts[i] - mt), 0) / ns.reduce((s, n) => s + (n - mn) ** 2, 0);
    const a = mt - b * mn;
    rows.push({ bench: 'gen group step vs full depth', case: `K=${K}, L=${L}, D=256, ${threads}t`, figure: `${(g / f).toFixed(3)} (group ${g.toFixed(2)} ms, full ${f.toFixed(2)} ms; 1/K = ${(1 / K).toFixed(3)})`, target: `<= ${(1.1 / K).toFixed(3)}` });
    rows.push({ bench: 'gen fixed per-step overhead', case: `K=${K}, D=256, ${threads}t`, figure: `${((100 * a) / g).toFixed(1)}% of a group step (a = ${a.toFixed(3)} ms, ${b.toFixed(3)} ms/layer)`, target: '<= 5%' });
    if (K === 4) {
      // the 40-step sampling loop, grouped vs full depth (no VLM / VAE: see part 3 for those)
      const ts40 = timeSchedule(quick ? 12 : 40);
      const loop = async (full: boolean) => {
        const t0 = nowMs();
        let xx = x;
        for (let i = 0; i + 1 < ts40.length; i++) {
          const k = m.gen.groupOf(ts40[i]);
          const v = full ? m.gen.velocityLayers(xx, ts40[i], 0, L, m.cond, m.nul, 2) : m.gen.velocity(xx, ts40[i], k, m.cond, m.nul, 2);
          xx = m.e.axpby(1, xx, Math.fround(ts40[i + 1] - ts40[i]), v);
        }
        await xx.read();
        return nowMs() - t0;
      };
      const gs: number[] = [];
      const fs: number[] = [];
      for (let r = 0; r < (quick ? 2 : 5); r++) {
        gs.push(await loop(false));
        fs.push(await loop(true));
      }
      rows.push({ bench: 'gen sampling loop full/grouped', case: `K=4, ${ts40.length - 1} steps, ${threads}t`, figure: `${(median(fs) / median(gs)).toFixed(2)} (${(median(gs) / 1e3).toFixed(3)} s vs ${(median(fs) / 1e3).toFixed(3)} s; 0.85K = 3.40)`, target: '>= 3.40' });
    }
    await m.dispose();
  }
  return rows;
}

async function endToEnd(threads: number, quick: boolean): Promise<Row[]> {
  const lf = await LatteFlow.load(path.join(root, 'test/fixtures/tiny-model'), { backend: 'cpu', threads });
  const steps = 40;
  const run = async (depth: 'group' | 'full') => {
    const t0 = nowMs();
    await lf.generateImage({ prompt: 'a small red circle on the left', steps, seed: 1, depth });
    return nowMs() - t0;
  };
  await run('group');
  await run('full');
  const g: number[] = [];
  const f: number[] = [];
  for (let r = 0; r < (quick ? 3 : 9); r++) {
    g.push(await run('group'));
    f.push(await run('full'));
  }
  // one group step alone, to put the fixed costs in proportion on the smallest model
  await lf.dispose();
  const K = 2;
  return [
    { bench: 'gen tiny model end to end (generateImage)', case: `K=${K}, ${steps} steps, ${threads}t`, figure: `full/grouped ${(median(f) / median(g)).toFixed(2)} (grouped ${median(g).toFixed(1)} ms/image, full ${median(f).toFixed(1)} ms; 0.85K = ${(0.85 * K).toFixed(2)})`, target: `>= ${(0.85 * K).toFixed(2)}` },
  ];
}

async function realScale(threads: number, quick: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  const L = 28;
  const K = 4;
  for (const weights of ['f32', 'bf16'] as const) {
    const m = await makeModel(path.join(os.tmpdir(), 'latte-flow-gen-real'), { ...REAL_SCALE, layers: L, groups: K, dtype: 'bf16' }, threads, weights);
    const x = m.e.noise([1, REAL_SCALE.latentChannels, ...REAL_SCALE.latentSize], 1);
    await stepMs(m, x, 0.1, 0, L / K);
    const times: number[] = [];
    for (let r = 0; r < (quick ? 2 : 4); r++) {
      const k = r % K;
      times.push(await stepMs(m, x, (k + 0.5) / K, (k * L) / K, ((k + 1) * L) / K));
    }
    const s = median(times) / 1e3;
    rows.push({ bench: 'gen real scale (2B widths, 28 layers, K=4, 64 tokens, CFG)', case: `${weights}, ${threads}t`, figure: `${s.toFixed(2)} s/step, ${(40 * s).toFixed(0)} s/image (40 steps)` });
    await m.dispose();
  }
  return rows;
}

export async function runGenerationBench(threads: number[], quick: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  for (const t of threads) {
    if (!skip.has('ratios')) rows.push(...(await ratios(t, quick)));
    if (!skip.has('e2e')) rows.push(...(await endToEnd(t, quick)));
  }
  if (!skip.has('real')) rows.push(...(await realScale(threads[threads.length - 1], quick)));
  return rows;
}

await runAsScript(import.meta.url, (o) => runGenerationBench(o.threads ?? [1, 2], o.quick));
