/**
 * `npm run bench:batching`: what the scheduler's cross-request batching buys, in one run. For 1, 4
 * and 16 concurrent clients, images/s (the shipped model) and answer tokens/s against the same
 * requests made one at a time, with p50/p95 request latency and the mean batch size. Ratios within
 * one run; alternating rounds (one-at-a-time, then concurrent), min over rounds.
 *   node --import=tsx benchmarks/batching.ts [--rounds 2] [--steps 30] [--clients 1,4,16] [--threads 2]
 */
import { LatteFlow, SHIPPED_MODEL } from '../lib/index.ts';
import { examples } from '../lib/shapes/world.ts';
import { machineInfo, printMachine, nowMs } from './common.ts';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : d;
};
const rounds = Number(opt('--rounds', '2'));
const steps = Number(opt('--steps', '30'));
const clients = opt('--clients', '1,4,16').split(',').map(Number);
const threads = Number(opt('--threads', '2'));

const pct = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(p * v.length))];

async function measure(lf: LatteFlow, n: number, one: (i: number) => Promise<number>) {
  const rows: number[] = [];
  const off = lf.onBatch((b) => rows.push(b.rows));
  let seq = Infinity;
  let par = Infinity;
  let lat: number[] = [];
  let units = 0;
  for (let r = 0; r < rounds; r++) {
    let t0 = nowMs();
    units = 0;
    for (let i = 0; i < n; i++) units += await one(i);
    seq = Math.min(seq, nowMs() - t0);
    rows.length = 0;
    t0 = nowMs();
    const l: number[] = [];
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const s = nowMs();
      await one(i);
      l.push(nowMs() - s);
    }));
    const ms = nowMs() - t0;
    if (ms < par) {
      par = ms;
      lat = l;
    }
  }
  off();
  const mean = rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
  return { seqRate: (units / seq) * 1000, parRate: (units / par) * 1000, p50: pct(lat, 0.5), p95: pct(lat, 0.95), meanLat: lat.reduce((a, b) => a + b, 0) / lat.length, mean };
}

printMachine(machineInfo());
console.log(`shipped model, CPU, ${threads} threads, ${steps} steps per image, ${rounds} rounds (min)`);
console.log('| clients | kind | one at a time | concurrent | ratio | p50 ms | p95 ms | p95 / mean | mean batch |');
console.log('|---|---|---|---|---|---|---|---|---|');
const prompts = ['a small red circle on the left', 'a blue square above a yellow triangle', 'a large green triangle in the center', 'a purple square to the left of an orange circle'];
const exs = examples(2024, 0, 16);
for (const n of clients) {
  const lf = await LatteFlow.load(SHIPPED_MODEL, { backend: 'cpu', threads, maxBatch: Math.max(n, 1), maxQueue: 64 });
  await lf.generateImage({ prompt: prompts[0], steps: 2 }); // warm-up
  const img = await measure(lf, n, async (i) => (await lf.generateImage({ prompt: prompts[i % prompts.length], seed: i, steps }), 1));
  console.log(`| ${n} | images/s | ${img.seqRate.toFixed(2)} | ${img.parRate.toFixed(2)} | ${(img.parRate / img.seqRate).toFixed(2)}x | ${img.p50.toFixed(0)} | ${img.p95.toFixed(0)} | ${(img.p95 / img.meanLat).toFixed(2)} | ${img.mean.toFixed(1)} |`);
  const ans = await measure(lf, n, async (i) => {
    let tokens = 0;
    await lf.answer({ image: { width: 64, height: 64, data: exs[i].image }, question: 'describe the image.', maxTokens: 24, onToken: () => void tokens++ });
    return tokens;
  });
  console.log(`| ${n} | answer tokens/s | ${ans.seqRate.toFixed(1)} | ${ans.parRate.toFixed(1)} | ${(ans.parRate / ans.seqRate).toFixed(2)}x | ${ans.p50.toFixed(0)} | ${ans.p95.toFixed(0)} | ${(ans.p95 / ans.meanLat).toFixed(2)} | ${ans.mean.toFixed(1)} |`);
  await lf.dispose();
}
