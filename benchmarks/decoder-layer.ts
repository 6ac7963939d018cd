/**
 * A Qwen2-0.5B-shaped decoder layer on our engine vs onnxruntime-node (fp32), same weights.
 *
 *   hidden 896, 14 query heads / 2 KV heads (GQA), head dim 64, SwiGLU ffn 4864, RMSNorm eps 1e-6,
 *   q/k/v with bias, o without, RoPE theta 1e6 (rotate_half form), causal mask.
 *   prefill: 256 tokens, no past.  decode: 1 token after 256 past tokens (KV cache concat).
 *
 * Ours: rmsNorm, linear on packLinear weights ('f32' and 'bf16'), rope, attention(causal, GQA),
 * add, swiglu, concat. The timed call uploads x, enqueues the layer and awaits the output read;
 * the KV cache and positions already live in the engine (as in a generation loop).
 * ORT: the same layer as a plain ONNX graph (opset 17) built in memory by ./onnx.ts with the
 * weights as initializers (so ORT pre-packs them); session intraOpNumThreads = our threads,
 * interOpNumThreads 1, graphOptimizationLevel 'all'. cos/sin and the additive mask are inputs, as
 * a model computes them once for all layers. The timed call is session.run with the outputs
 * (layer output + present K/V) copied back to JS.
 *
 * Method: outputs are compared first (max |ours - ort| / max |ort|); then rounds in which each
 * variant (order rotated per round) gets a quiet gap, one warm call, and timed calls each preceded
 * by an untimed read of 64 MiB (so no variant finds its weights in the L3, as in a whole model).
 * Figures are medians over rounds; each ratio is the median of per-round ORT_time / our_time.
 * Why the gap: after a run, onnxruntime's intra-op threads spin for ~50 ms and libgomp's for a few
 * ms; on 2 cores that spinning slows whatever runs next by up to 2x (measured while building this).
 *
 * Run alone: node --import=tsx benchmarks/decoder-layer.ts [--quick] [--profile] [--threads 1,2]
 * (run.ts starts it once per thread count, under `taskset -c 0` for one thread so that both
 * engines' threads share the same CPU).
 */
import * as ort from 'onnxruntime-node';
import { Engine, type Tensor } from '../lib/index.ts';
import { buildOnnxLayer, causalMask, cosSin, engineLayer, makeWeights, QWEN2_05B, uploadLayer, type EngineParams, type LayerDtype as Dt } from '../lib/bench/decoder-layer.ts';
import { maxRelErr, median, nowMs, randn, runAsScript, type Row } from './common.ts';

// the layer itself (ours and ONNX) is in lib/bench/decoder-layer.ts, which `latte-flow bench` shares
export const CFG = QWEN2_05B;
const { hidden: D, kvHeads: G, headDim: HD } = CFG;
const KVD = G * HD;

const QUIET_MS = 150;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const flushBuf = new Float64Array(8 << 20); // 64 MiB: twice this machine's L3
let flushSink = 0;
function flushCaches(): void {
  let s = 0;
  for (let i = 0; i < flushBuf.length; i += 8) s += flushBuf[i]; // one read per cache line
  flushSink += s;
}

// ---- the benchmark ---------------------------------------------------------------------------------
export interface DecoderOptions {
  threads?: number[];
  rounds?: number;
  quick?: boolean;
  profile?: boolean;
  log?: (s: string) => void;
}

interface CaseDef {
  name: 'prefill' | 'decode';
  S: number;
  P: number;
}
const CASES: CaseDef[] = [
  { name: 'prefill', S: 256, P: 0 },
  { name: 'decode', S: 1, P: 256 },
];

export interface DecoderResult {
  case: string;
  threads: number;
  oursF32Ms: number;
  oursBf16Ms: number;
  ortMs: number;
  ratioF32: number; // ORT time / our fp32 time
  ratioBf16: number; // ORT fp32 time / our bf16 time
  errF32: number;
  errBf16: number;
}

export async function runDecoderBench(opts: DecoderOptions = {}): Promise<{ results: DecoderResult[]; rows: Row[] }> {
  const log = opts.log ?? console.log;
  const rounds = opts.rounds ?? (opts.quick ? 5 : 9);
  const minMs = opts.quick ? 120 : 300;
  const w = makeWeights(CFG);
  const models = { prefill: buildOnnxLayer(w, false), decode: buildOnnxLayer(w, true) };
  const results: DecoderResult[] = [];
  const rows: Row[] = [];
  log(`decoder layer (Qwen2-0.5B shape): ${rounds} rounds; per variant and round: ${QUIET_MS} ms quiet, 1 warm call, >= ${minMs} ms of timed calls (L3 flushed before each)`);
  log('| case | thr | ours f32 ms | ours bf16 ms | ORT f32 ms | ORT/ours f32 (p25-p75) | ORT/ours bf16 (p25-p75) | err f32 | err bf16 |');
  log('|---|---|---|---|---|---|---|---|---|');

  for (const threads of opts.threads ?? [1, 2]) {
    const e = new Engine({ backend: 'cpu', threads });
    const params = uploadLayer(e, w, ['f32', 'bf16']);
    const sessOpts: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    };
    for (const c of CASES) {
      const session = await ort.InferenceSession.create(models[c.name], sessOpts);
      const T = c.P + c.S;
      const x = randn(c.S * D, 1000 + c.S);
      const pk = randn(c.P * KVD, 2000 + c.P);
      const pv = randn(c.P * KVD, 3000 + c.P);
      const { cos, sin } = cosSin(CFG, c.P, c.S);
      const mask = causalMask(c.S, c.P);

      const feeds: Record<string, ort.Tensor> = {
        x: new ort.Tensor('float32', x, [1, c.S, D]),
        cos: new ort.Tensor('float32', cos, [1, c.S, 1, HD]),
        sin: new ort.Tensor('float32', sin, [1, c.S, 1, HD]),
        mask: new ort.Tensor('float32', mask, [c.S, T]),
      };
      if (c.P) {
        feeds.past_k = new ort.Tensor('float32', pk, [1, c.P, G, HD]);
        feeds.past_v = new ort.Tensor('float32', pv, [1, c.P, G, HD]);
      }
      const pos = e.tensor(Int32Array.from({ length: c.S }, (_, i) => c.P + i), [1, 1, c.S], 'i32');
      const past = c.P ? { k: e.tensor(pk, [1, c.P, G, HD]), v: e.tensor(pv, [1, c.P, G, HD]) } : null;

      const ours = async (dt: Dt, keep = false) => {
        const xt = e.tensor(x, [1, c.S, D]);
        const r = await engineLayer(e, params[dt], xt, pos, past);
        const out = await r.out.readFloat32();
        const kv = keep ? { k: await r.k.readFloat32(), v: await r.v.readFloat32() } : null;
        for (const t of r.temps) t.dispose();
        r.out.dispose();
        xt.dispose();
        return { out, kv };
      };
      const theirs = async () => session.run(feeds);

      // agreement before timing
      const ref = await theirs();
      const refOut = ref.out.data as Float32Array;
      const errs: Record<Dt, number> = { f32: 0, bf16: 0 };
      for (const dt of ['f32', 'bf16'] as Dt[]) {
        const r = await ours(dt, true);
        errs[dt] = Math.max(
          maxRelErr(r.out, refOut),
          maxRelErr(r.kv!.k, ref.present_k.data as Float32Array),
          maxRelErr(r.kv!.v, ref.present_v.data as Float32Array),
        );
      }
      if (!(errs.f32 < 1e-3)) throw new Error(`decoder ${c.name}: our fp32 layer disagrees with ORT (max rel err ${errs.f32})`);

      const variants: [string, () => Promise<unknown>][] = [
        ['f32', () => ours('f32')],
        ['bf16', () => ours('bf16')],
        ['ort', theirs],
      ];
      const once = async (f: () => Promise<unknown>): Promise<number> => {
        const t0 = nowMs();
        await f();
        return nowMs() - t0;
      };
      for (const [, f] of variants) await f(); // warm: primitives, first-touch memory
      let slowest = 0;
      for (const [, f] of variants) {
        flushCaches();
        slowest = Math.max(slowest, await once(f));
      }
      const reps = Math.max(2, Math.ceil(minMs / Math.max(0.01, slowest)));
      const times: Record<string, number[]> = { f32: [], bf16: [], ort: [] };
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < variants.length; i++) {
          const [name, f] = variants[(i + r) % variants.length];
          await sleep(QUIET_MS); // the previous variant's spinning threads go to sleep
          await f(); // warm: this variant's threads wake up
          let sum = 0;
          for (let j = 0; j < reps; j++) {
            flushCaches(); // a layer of a whole model never finds its weights in the L3
            sum += await once(f);
          }
          times[name].push(sum / reps);
        }
      }
      const perRound = (a: string): number[] => times.ort.map((t, i) => t / times[a][i]).sort((p, q) => p - q);
      const ratio = (a: string): number => median(perRound(a));
      const iqr = (a: string): string => {
        const v = perRound(a);
        return `${v[Math.floor(v.length / 4)].toFixed(2)}-${v[Math.floor((3 * v.length) / 4)].toFixed(2)}`;
      };
      const res: DecoderResult = {
        case: c.name,
        threads,
        oursF32Ms: median(times.f32),
        oursBf16Ms: median(times.bf16),
        ortMs: median(times.ort),
        ratioF32: ratio('f32'),
        ratioBf16: ratio('bf16'),
        errF32: errs.f32,
        errBf16: errs.bf16,
      };
      results.push(res);
      log(
        `| ${c.name} | ${threads} | ${res.oursF32Ms.toFixed(2)} | ${res.oursBf16Ms.toFixed(2)} | ${res.ortMs.toFixed(2)} | ` +
          `${res.ratioF32.toFixed(2)}x (${iqr('f32')}) | ${res.ratioBf16.toFixed(2)}x (${iqr('bf16')}) | ${res.errF32.toExponential(1)} | ${res.errBf16.toExponential(1)} |`,
      );
      rows.push({ bench: 'decoder', case: `${c.name} ${threads}t fp32: ORT/ours`, figure: `${res.ratioF32.toFixed(2)}x (${res.oursF32Ms.toFixed(2)} vs ${res.ortMs.toFixed(2)} ms)`, target: '>= 1.0x' });
      rows.push({ bench: 'decoder', case: `${c.name} ${threads}t bf16: ORT f32/ours`, figure: `${res.ratioBf16.toFixed(2)}x (${res.oursBf16Ms.toFixed(2)} ms)`, target: '>= 1.5x (AMX)' });

      if (opts.profile) await profileLayer(e, params, x, pos, past, c, log);

      await session.release();
      pos.dispose();
      past?.k.dispose();
      past?.v.dispose();
    }
    await e.dispose();
  }
  return { results, rows };
}

/** Per-op time of our layer (a fence after each op group; medians of 5 runs, each after a quiet gap and an L3 flush). */
async function profileLayer(
  e: Engine,
  params: Record<Dt, EngineParams>,
  x: Float32Array,
  pos: Tensor,
  past: { k: Tensor; v: Tensor } | null,
  c: CaseDef,
  log: (s: string) => void,
): Promise<void> {
  for (const dt of ['f32', 'bf16'] as Dt[]) {
    const acc = new Map<string, number[]>();
    for (let run = 0; run < 6; run++) {
      await sleep(QUIET_MS); // other threads (ORT's) stop spinning
      flushCaches();
      const xt = e.tensor(x, [1, c.S, D]);
      await e.fence();
      const seen = new Map<string, number>();
      let last = nowMs();
      const r = await engineLayer(e, params[dt], xt, pos, past, async (op) => {
        await e.fence();
        const t = nowMs();
        seen.set(op, (seen.get(op) ?? 0) + t - last);
        last = t;
      });
      for (const t of [...r.temps, r.out, xt]) t.dispose();
      if (run === 0) continue; // warm-up
      for (const [op, ms] of seen) acc.set(op, [...(acc.get(op) ?? []), ms]);
    }
    const parts = [...acc].map(([op, v]) => [op, median(v)] as const);
    const total = parts.reduce((s, [, ms]) => s + ms, 0);
    log(`  profile ${c.name} ${dt} ${e.backend.threads}t (fence per op group, ms): ` + parts.map(([op, ms]) => `${op} ${ms.toFixed(2)} (${((100 * ms) / total).toFixed(0)}%)`).join(', ') + `; sum ${total.toFixed(2)}`);
  }
}

await runAsScript(import.meta.url, async (o) => (await runDecoderBench(o)).rows);
