/**
 * Fused projections (issue 21, item 3): does one GEMM over concatenated weights beat separate ones?
 * A Qwen2-VL-2B decoder layer's input projections (D 1536; q 1536, k 256, v 256; gate 8960, up 8960)
 * run either as five linears (today) or as two (qkv, gate|up) plus the slices that split their
 * outputs again (the slices are counted: a fused layer would need them or strided consumers).
 * Rows: 1 (decode), 64 and 256 (prefill), 1024 (long prefill); weights f32, bf16 and q8. Two layers'
 * distinct weights per sample so no format keeps its weights in the L3. Separate and fused are
 * sampled in turn for several rounds (order flipped each round); min and median ms per layer.
 * The same run gives q8 vs bf16 prefill per row count (the q8 panel path).
 *
 *   node --import=tsx benchmarks/fused-linear.ts [--threads 1,2] [--rounds 9] [--rows 1,64,256,1024]
 */
import { Engine, type Tensor } from '../lib/index.ts';
import { median, randn } from './common.ts';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : d);
const threads = opt('--threads', '1,2').split(',').map(Number);
const rounds = Number(opt('--rounds', '9'));
const ROWS = opt('--rows', '1,64,256,1024').split(',').map(Number);
const FORMATS = (opt('--formats', 'f32,bf16,q8').split(',')) as ('f32' | 'bf16' | 'q8')[];
const D = 1536, Q = 1536, KV = 256, F = 8960, LAYERS = 2;

type Layer = { q: Tensor; k: Tensor; v: Tensor; gate: Tensor; up: Tensor; qkv: Tensor; gateUp: Tensor };

for (const t of threads) {
  const e = new Engine({ backend: 'cpu', threads: t });
  const layers: Record<string, Layer[]> = {};
  let seed = 1;
  for (let l = 0; l < LAYERS; l++) {
    const raw = (n: number) => e.tensor(randn(n * D, seed++, 1 / Math.sqrt(D)), [n, D]);
    const [wq, wk, wv, wg, wu] = [raw(Q), raw(KV), raw(KV), raw(F), raw(F)];
    const wqkv = e.concat(e.concat(wq, wk, 0), wv, 0);
    const wgu = e.concat(wg, wu, 0);
    for (const f of FORMATS) {
      const p = (w: Tensor) => e.packLinear(w, f);
      (layers[f] ??= []).push({ q: p(wq), k: p(wk), v: p(wv), gate: p(wg), up: p(wu), qkv: p(wqkv), gateUp: p(wgu) });
    }
    for (const w of [wq, wk, wv, wg, wu, wqkv, wgu]) w.dispose();
  }
  for (const rows of ROWS) {
    const x = e.tensor(randn(rows * D, rows), [rows, D]);
    const run = async (f: string, fused: boolean) => {
      const made: Tensor[] = [];
      const t0 = performance.now();
      for (const L of layers[f]) {
        if (fused) {
          const qkv = e.linear(x, L.qkv), gu = e.linear(x, L.gateUp);
          made.push(qkv, gu, e.slice(qkv, 1, 0, Q), e.slice(qkv, 1, Q, KV), e.slice(qkv, 1, Q + KV, KV),
            e.slice(gu, 1, 0, F), e.slice(gu, 1, F, F));
        } else {
          made.push(e.linear(x, L.q), e.linear(x, L.k), e.linear(x, L.v), e.linear(x, L.gate), e.linear(x, L.up));
        }
      }
      await e.fence();
      const ms = (performance.now() - t0) / LAYERS;
      for (const m of made) m.dispose();
      return ms;
    };
    const got: Record<string, number[]> = {};
    const keys = FORMATS.flatMap((f) => [`${f} separate`, `${f} fused`]);
    for (const k of keys) await run(k.split(' ')[0], k.endsWith('fused')); // warm-up
    for (let r = 0; r < rounds; r++)
      for (const k of r % 2 ? [...keys].reverse() : keys) (got[k] ??= []).push(await run(k.split(' ')[0], k.endsWith('fused')));
    for (const f of FORMATS) {
      const s = got[`${f} separate`], u = got[`${f} fused`];
      console.log(`${t} thr, ${rows} rows, ${f}: separate ${Math.min(...s).toFixed(2)}/${median(s).toFixed(2)} ms, ` +
        `fused ${Math.min(...u).toFixed(2)}/${median(u).toFixed(2)} ms (min/median); fused speedup ` +
        `${(Math.min(...s) / Math.min(...u)).toFixed(2)}x min, ${(median(s) / median(u)).toFixed(2)}x median`);
    }
    if (got['q8 separate'] && got['bf16 separate'])
      console.log(`${t} thr, ${rows} rows: q8 vs bf16 (separate, median) ${(median(got['bf16 separate']) / median(got['q8 separate'])).toFixed(2)}x` +
        (got['f32 separate'] ? `; q8 vs f32 ${(median(got['f32 separate']) / median(got['q8 separate'])).toFixed(2)}x` : ''));
    x.dispose();
  }
  await e.dispose();
}
