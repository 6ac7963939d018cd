/**
 * Our linear op vs onnxruntime's MatMul (MLAS) on the decoder layer's GEMM shapes, fp32, from
 * TypeScript. Separates "whose GEMM is faster on this CPU" from the rest of the layer.
 * Each call: x uploaded / fed from JS, output read back. Per shape and round: a quiet gap, one warm
 * call, timed calls; ratio = median of per-round ORT_time / our_time.
 *
 * Run: node --import=tsx benchmarks/linear-vs-ort.ts [--threads 1,2] [--quick]
 * (pin one-thread runs with `taskset -c 0` so both sides use the same CPU)
 */
import * as ort from 'onnxruntime-node';
import { Engine } from '../lib/index.ts';
import { GraphBuilder } from '../lib/bench/onnx.ts';
import { maxRelErr, median, nowMs, randn, runAsScript, type Row } from './common.ts';

const SHAPES: [number, number, number][] = [
  [256, 896, 4864], // prefill gate/up
  [256, 4864, 896], // prefill down
  [256, 896, 896], // prefill q/o
  [1, 896, 4864], // decode gate/up
  [1, 4864, 896], // decode down
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function matmulModel(w: Float32Array, k: number, n: number): Uint8Array {
  const b = new GraphBuilder();
  const wt = new Float32Array(k * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wt[c * n + r] = w[r * k + c];
  b.op('MatMul', [b.input('x', ['M', k]), b.weight('w', wt, [k, n])], undefined, 'y');
  b.output('y', ['M', n]);
  return b.build('matmul');
}

export async function runLinearVsOrt(opts: { threads?: number[]; quick?: boolean; log?: (s: string) => void } = {}): Promise<Row[]> {
  const log = opts.log ?? console.log;
  const rounds = opts.quick ? 5 : 7;
  const minMs = opts.quick ? 100 : 200;
  const rows: Row[] = [];
  log(`linear vs onnxruntime MatMul (fp32), ${rounds} rounds`);
  log('| M | K | N | thr | ours GFLOP/s | ORT GFLOP/s | ORT/ours | maxrel |');
  log('|---|---|---|---|---|---|---|---|');
  for (const threads of opts.threads ?? [1, 2]) {
    const e = new Engine({ backend: 'cpu', threads });
    for (const [m, k, n] of SHAPES) {
      const w = randn(n * k, k + n, 1 / Math.sqrt(k));
      const x = randn(m * k, m + k);
      const packed = e.packLinear(e.tensor(w, [n, k]));
      const session = await ort.InferenceSession.create(matmulModel(w, k, n), { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
      const feeds = { x: new ort.Tensor('float32', x, [m, k]) };
      const ours = async (): Promise<Float32Array> => {
        const xt = e.tensor(x, [m, k]);
        const y = e.linear(xt, packed);
        const out = await y.readFloat32();
        y.dispose();
        xt.dispose();
        return out;
      };
      const theirs = async (): Promise<Float32Array> => (await session.run(feeds)).y.data as Float32Array;
      const err = maxRelErr(await ours(), await theirs());
      const once = async (f: () => Promise<unknown>): Promise<number> => {
        const t0 = nowMs();
        await f();
        return nowMs() - t0;
      };
      const reps = Math.max(3, Math.ceil(minMs / Math.max(0.01, Math.max(await once(ours), await once(theirs)))));
      const t: Record<string, number[]> = { ours: [], ort: [] };
      for (let r = 0; r < rounds; r++)
        for (const [name, f] of (r % 2 ? [['ort', theirs], ['ours', ours]] : [['ours', ours], ['ort', theirs]]) as [string, () => Promise<unknown>][]) {
          await sleep(100);
          await f();
          let s = 0;
          for (let j = 0; j < reps; j++) s += await once(f);
          t[name].push(s / reps);
        }
      const flop = 2 * m * k * n;
      const ratio = median(t.ort.map((v, i) => v / t.ours[i]));
      const g = (ms: number): string => (flop / ms / 1e6).toFixed(1);
      log(`| ${m} | ${k} | ${n} | ${threads} | ${g(median(t.ours))} | ${g(median(t.ort))} | ${ratio.toFixed(2)}x | ${err.toExponential(1)} |`);
      rows.push({ bench: 'linear-vs-ort', case: `M=${m} K=${k} N=${n} ${threads}t`, figure: `${ratio.toFixed(2)}x (${g(median(t.ours))} vs ${g(median(t.ort))} GFLOP/s)` });
      packed.dispose();
      await session.release();
    }
    await e.dispose();
  }
  return rows;
}

await runAsScript(import.meta.url, (o) => runLinearVsOrt(o));
