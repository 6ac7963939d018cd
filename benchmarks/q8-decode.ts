/**
 * q8 vs bf16 vs f32 weights (issue 21): one decode step's linear layers of a Qwen2-VL-2B-shaped
 * decoder layer (D 1536, F 8960, 12 heads / 2 KV heads, head dim 128: q, k, v, o, gate, up, down;
 * 46.8M weights), one row, on packed weights. Four layers' worth of distinct weights are run per
 * step (so no format finds its weights in the L3) and the time divided by four. The formats are
 * measured in alternating rounds; min and median per layer.
 *
 *   node --import=tsx benchmarks/q8-decode.ts [--threads 1,2] [--rounds 15]
 */
import { Engine, type Tensor } from '../lib/index.ts';
import { randn } from './common.ts';

const args = process.argv.slice(2);
const threads = (args.includes('--threads') ? args[args.indexOf('--threads') + 1] : '1,2').split(',').map(Number);
const rounds = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 15;
const D = 1536, F = 8960, H = 12, G = 2, d = 128, LAYERS = 4;
const SHAPES: [number, number][] = [[H * d, D], [G * d, D], [G * d, D], [D, H * d], [F, D], [F, D], [D, F]];
const FORMATS = ['f32', 'bf16', 'q8'] as const;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

for (const t of threads) {
  const e = new Engine({ backend: 'cpu', threads: t });
  const packed: Record<string, Tensor[]> = Object.fromEntries(FORMATS.map((f) => [f, []]));
  let seed = 1;
  for (let l = 0; l < LAYERS; l++)
    for (const [n, k] of SHAPES) {
      const w = e.tensor(randn(n * k, seed++, 1 / Math.sqrt(k)), [n, k]);
      for (const f of FORMATS) packed[f].push(e.packLinear(w, f));
      w.dispose();
    }
  const xs = new Map<number, Tensor>([D, F].map((k) => [k, e.tensor(randn(k, k), [1, k])]));
  const step = async (f: string) => {
    const t0 = performance.now();
    let last: Tensor | undefined;
    for (const w of packed[f]) last = e.linear(xs.get(w.shape[1])!, w);
    await last!.read();
    return (performance.now() - t0) / LAYERS;
  };
  const got: Record<string, number[]> = Object.fromEntries(FORMATS.map((f) => [f, []]));
  for (const f of FORMATS) await step(f); // warm-up: first touch of the packed weights
  for (let r = 0; r < rounds; r++) for (const f of r % 2 ? [...FORMATS].reverse() : FORMATS) got[f].push(await step(f));
  for (const f of FORMATS) console.log(`${t} thread(s) ${f}: ${Math.min(...got[f]).toFixed(2)} ms min, ${median(got[f]).toFixed(2)} ms median per layer`);
  console.log(`${t} thread(s) q8 speedup (median): vs bf16 ${(median(got.bf16) / median(got.q8)).toFixed(2)}x, vs f32 ${(median(got.f32) / median(got.q8)).toFixed(2)}x; (min): vs bf16 ${(Math.min(...got.bf16) / Math.min(...got.q8)).toFixed(2)}x`);
  console.log(`${t} thread(s) bytes: ${JSON.stringify(e.stats().bytesInUse)}`);
  await e.dispose();
}
