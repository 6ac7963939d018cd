/**
 * Row-wise and pointwise CPU ops at the shipped and real models' shapes, and DC-AE's channel RMSNorm: microseconds per op (R ops
 * enqueued, one fence) and the ratio to an `add` of the same size, which is memory traffic plus the
 * engine's per-op cost. An op far above its add ratio computes element by element in scalar code
 * (libm calls, a serial double sum) rather than in vector registers.
 *
 *   node --import=tsx benchmarks/pointwise.ts [--threads 1,2]
 */
import { Engine, type Tensor } from '../lib/index.ts';
import { nowMs, randn, runAsScript, type Row } from './common.ts';

const SHAPES: [number, number, string][] = [
  [256, 128, 'shapes vision MLP (256 patches x 128)'],
  [128, 256, 'shapes generator step (2 x 64 tokens x 256)'],
  [128, 704, 'shapes generator MLP (2 x 64 tokens x 704)'],
  [256, 1536, 'real-scale rows (256 x 1536)'],
];

async function usPerOp(e: Engine, op: () => Tensor, reps: number): Promise<number> {
  for (let i = 0; i < 20; i++) op().dispose();
  await e.fence();
  const t0 = nowMs();
  for (let i = 0; i < reps; i++) op().dispose();
  await e.fence();
  return ((nowMs() - t0) / reps) * 1e3;
}

await runAsScript(import.meta.url, async (o): Promise<Row[]> => {
  const rows: Row[] = [];
  for (const threads of o.threads ?? [1]) {
    const e = new Engine({ backend: 'cpu', threads });
    for (const [r, n, what] of SHAPES) {
      const x = e.tensor(randn(r * n, 1), [r, n]);
      const y = e.tensor(randn(r * n, 2), [r, n]);
      const w = e.tensor(randn(n, 3), [n]);
      const b = e.tensor(randn(n, 4), [n]);
      const reps = Math.max(50, Math.round(4e6 / (r * n)));
      const add = await usPerOp(e, () => e.add(x, y), reps);
      const ops: [string, () => Tensor][] = [
        ['rms_norm', () => e.rmsNorm(x, w)],
        ['layer_norm', () => e.layerNorm(x, w, b)],
        ['silu', () => e.silu(x)],
        ['gelu quick', () => e.gelu(x, 'quick')],
        ['gelu erf', () => e.gelu(x, 'erf')],
        ['gelu tanh', () => e.gelu(x, 'tanh')],
      ];
      const figures: string[] = [];
      for (const [name, op] of ops) {
        const us = await usPerOp(e, op, reps);
        figures.push(`${name} ${us.toFixed(1)} us (${(us / add).toFixed(1)}x)`);
      }
      rows.push({ bench: 'pointwise ops, us per op (x an add of the same size)', case: `${what}, ${threads}t; add ${add.toFixed(1)} us`, figure: figures.join('; ') });
      for (const t of [x, y, w, b]) t.dispose();
    }
    // DC-AE's RMSNorm2d: normalised over the channels of every pixel (NCHW, strided)
    for (const [C, H] of [[128, 16], [64, 64]]) {
      const x = e.tensor(randn(C * H * H, 5), [1, C, H, H]);
      const y = e.tensor(randn(C * H * H, 6), [1, C, H, H]);
      const w = e.tensor(randn(C, 7), [C]);
      const reps = Math.max(50, Math.round(4e6 / (C * H * H)));
      const add = await usPerOp(e, () => e.add(x, y), reps);
      const us = await usPerOp(e, () => e.rmsNorm(x, w, { channels: true }), reps);
      rows.push({ bench: 'rms_norm over channels (NCHW), us per op', case: `1 x ${C} x ${H} x ${H}, ${threads}t; add ${add.toFixed(1)} us`, figure: `${us.toFixed(1)} us (${(us / add).toFixed(1)}x an add)` });
      for (const t of [x, y, w]) t.dispose();
    }
    await e.dispose();
  }
  return rows;
});
