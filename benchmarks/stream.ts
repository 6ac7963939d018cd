/**
 * The engine's stream overheads, seen from TypeScript:
 *   enqueue: 10,000 `add` ops on [64] f32 tensors enqueued back to back, then one fence.
 *            Reports microseconds per op for the enqueue calls alone (what the JS thread pays)
 *            and for enqueue + drain (the stream's throughput on tiny ops). Median of rounds.
 *   fence:   `await engine.fence()` on an idle engine, one at a time: the round trip JS -> worker
 *            thread -> thread-safe function -> promise resolution. Median (and p90) of 1000.
 *
 * Run alone: node --import=tsx benchmarks/stream.ts [--quick] [--threads 1,2]
 */
import { Engine, type Tensor } from '../lib/index.ts';
import { isMain, machineInfo, median, nowMs, printMachine, printRows, type Row } from './common.ts';

export interface StreamOptions {
  threads?: number[];
  ops?: number;
  fences?: number;
  rounds?: number;
  quick?: boolean;
  log?: (s: string) => void;
}

export interface StreamResult {
  threads: number;
  enqueueUsPerOp: number;
  totalUsPerOp: number;
  fenceUs: number;
  fenceP90Us: number;
}

function quantile(v: number[], q: number): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export async function runStreamBench(opts: StreamOptions = {}): Promise<{ results: StreamResult[]; rows: Row[] }> {
  const log = opts.log ?? console.log;
  const N = opts.ops ?? 10_000;
  const F = opts.fences ?? 1000;
  const rounds = opts.rounds ?? (opts.quick ? 5 : 7);
  const results: StreamResult[] = [];
  const rows: Row[] = [];
  log(`stream: ${N} add ops on f32[64] then one fence (median of ${rounds} rounds); fence round trip (median of ${F})`);
  log('| thr | enqueue us/op | enqueue+run us/op | fence us (median) | fence us (p90) |');
  log('|---|---|---|---|---|');
  for (const threads of opts.threads ?? [1, 2]) {
    const e = new Engine({ backend: 'cpu', threads });
    const a = e.tensor(new Float32Array(64).fill(1), [64]);
    const b = e.tensor(new Float32Array(64).fill(2), [64]);
    await e.fence();

    const enq: number[] = [];
    const tot: number[] = [];
    const outs: Tensor[] = new Array(N);
    for (let r = 0; r <= rounds; r++) {
      const t0 = nowMs();
      for (let i = 0; i < N; i++) outs[i] = e.add(a, b);
      const t1 = nowMs();
      await e.fence();
      const t2 = nowMs();
      for (const t of outs) t.dispose();
      if (r === 0) continue; // warm-up round
      enq.push(((t1 - t0) * 1000) / N);
      tot.push(((t2 - t0) * 1000) / N);
    }
    const check = await e.add(a, b).readFloat32();
    if (check[0] !== 3 || check[63] !== 3) throw new Error('stream bench: add gave a wrong result');

    const fences: number[] = [];
    for (let i = 0; i < 50; i++) await e.fence(); // warm
    for (let i = 0; i < F; i++) {
      const t0 = nowMs();
      await e.fence();
      fences.push((nowMs() - t0) * 1000);
    }
    const res: StreamResult = {
      threads,
      enqueueUsPerOp: median(enq),
      totalUsPerOp: median(tot),
      fenceUs: median(fences),
      fenceP90Us: quantile(fences, 0.9),
    };
    results.push(res);
    log(`| ${threads} | ${res.enqueueUsPerOp.toFixed(2)} | ${res.totalUsPerOp.toFixed(2)} | ${res.fenceUs.toFixed(1)} | ${res.fenceP90Us.toFixed(1)} |`);
    rows.push({ bench: 'stream', case: `enqueue add[64] ${threads}t`, figure: `${res.enqueueUsPerOp.toFixed(2)} us/op enqueue, ${res.totalUsPerOp.toFixed(2)} us/op with run` });
    rows.push({ bench: 'stream', case: `fence round trip ${threads}t`, figure: `${res.fenceUs.toFixed(1)} us median (p90 ${res.fenceP90Us.toFixed(1)})` });
    await e.dispose();
  }
  return { results, rows };
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? args[ti + 1].split(',').map(Number) : undefined;
  printMachine(machineInfo());
  const { rows } = await runStreamBench({ quick: args.includes('--quick'), threads });
  console.log();
  printRows(rows);
}
