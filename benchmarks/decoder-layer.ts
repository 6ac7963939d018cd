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
import { GraphBuilder } from './onnx.ts';
import { maxRelErr, median, nowMs, randn, runAsScript, type Row } from './common.ts';

export const CFG = { hidden: 896, heads: 14, kvHeads: 2, headDim: 64, ffn: 4864, eps: 1e-6, theta: 1e6 } as const;
const { hidden: D, heads: H, kvHeads: G, headDim: HD, ffn: F } = CFG;
const KVD = G * HD;

type Dt = 'f32' | 'bf16';

export interface LayerWeights {
  ln1: Float32Array;
  ln2: Float32Array;
  wq: Float32Array; // [out, in] like nn.Linear
  bq: Float32Array;
  wk: Float32Array;
  bk: Float32Array;
  wv: Float32Array;
  bv: Float32Array;
  wo: Float32Array;
  wg: Float32Array;
  wu: Float32Array;
  wd: Float32Array;
}

export function makeWeights(seed = 7): LayerWeights {
  const lin = (o: number, i: number, s: number): Float32Array => randn(o * i, seed * 100 + s, 1 / Math.sqrt(i));
  const norm = (s: number): Float32Array => randn(D, seed * 100 + s, 0.1).map((v) => 1 + v);
  return {
    ln1: norm(1),
    ln2: norm(2),
    wq: lin(D, D, 3),
    bq: randn(D, seed * 100 + 4, 0.1),
    wk: lin(KVD, D, 5),
    bk: randn(KVD, seed * 100 + 6, 0.1),
    wv: lin(KVD, D, 7),
    bv: randn(KVD, seed * 100 + 8, 0.1),
    wo: lin(D, D, 9),
    wg: lin(F, D, 10),
    wu: lin(F, D, 11),
    wd: lin(D, F, 12),
  };
}

// ---- our engine ----------------------------------------------------------------------------------
interface EngineParams {
  ln1: Tensor;
  ln2: Tensor;
  bq: Tensor;
  bk: Tensor;
  bv: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  g: Tensor;
  u: Tensor;
  d: Tensor;
}

/** Uploads the layer once and packs its linear weights for each compute dtype. */
export function uploadLayer(e: Engine, w: LayerWeights, dtypes: Dt[]): Record<Dt, EngineParams> {
  const plain = {
    q: e.tensor(w.wq, [D, D]),
    k: e.tensor(w.wk, [KVD, D]),
    v: e.tensor(w.wv, [KVD, D]),
    o: e.tensor(w.wo, [D, D]),
    g: e.tensor(w.wg, [F, D]),
    u: e.tensor(w.wu, [F, D]),
    d: e.tensor(w.wd, [D, F]),
  };
  const shared = {
    ln1: e.tensor(w.ln1, [D]),
    ln2: e.tensor(w.ln2, [D]),
    bq: e.tensor(w.bq, [D]),
    bk: e.tensor(w.bk, [KVD]),
    bv: e.tensor(w.bv, [KVD]),
  };
  const out = {} as Record<Dt, EngineParams>;
  for (const dt of dtypes) {
    const p = (t: Tensor): Tensor => e.packLinear(t, dt);
    out[dt] = { ...shared, q: p(plain.q), k: p(plain.k), v: p(plain.v), o: p(plain.o), g: p(plain.g), u: p(plain.u), d: p(plain.d) };
  }
  for (const t of Object.values(plain)) t.dispose(); // freed once the packs have run
  return out;
}

export type Profiler = (op: string) => Promise<void>;

/** One decoder layer: x [1,S,D], positions i32 [1,1,S], past K/V [1,P,G,HD] or null. */
export async function engineLayer(
  e: Engine,
  p: EngineParams,
  x: Tensor,
  pos: Tensor,
  past: { k: Tensor; v: Tensor } | null,
  prof?: Profiler,
): Promise<{ out: Tensor; k: Tensor; v: Tensor; temps: Tensor[] }> {
  const S = x.shape[1];
  const temps: Tensor[] = [];
  const T = (t: Tensor): Tensor => (temps.push(t), t);
  const mark = async (op: string): Promise<void> => {
    if (prof) await prof(op);
  };
  const eps = CFG.eps;
  const h = T(e.rmsNorm(x, p.ln1, { eps }));
  await mark('rms_norm');
  const q = T(e.linear(h, p.q, p.bq));
  const k = T(e.linear(h, p.k, p.bk));
  const v = T(e.linear(h, p.v, p.bv));
  await mark('linear q/k/v');
  const qr = T(e.rope(T(e.reshape(q, [1, S, H, HD])), pos, { theta: CFG.theta })); // [1,S,H,HD]
  const kr = T(e.rope(T(e.reshape(k, [1, S, G, HD])), pos, { theta: CFG.theta })); // [1,S,G,HD]
  const v4 = T(e.reshape(v, [1, S, G, HD]));
  await mark('rope');
  const kc = past ? T(e.concat(past.k, kr, 1)) : kr; // [1,P+S,G,HD]
  const vc = past ? T(e.concat(past.v, v4, 1)) : v4;
  if (past) await mark('concat kv');
  const att = T(e.attention(qr, kc, vc, { mask: 'causal' }).out); // [1,S,H,HD]
  await mark('attention');
  const o = T(e.linear(T(e.reshape(att, [1, S, D])), p.o));
  await mark('linear o');
  const h1 = T(e.add(x, o));
  await mark('add');
  const h2 = T(e.rmsNorm(h1, p.ln2, { eps }));
  await mark('rms_norm');
  const g = T(e.linear(h2, p.g));
  const u = T(e.linear(h2, p.u));
  await mark('linear gate/up');
  const a = T(e.swiglu(g, u));
  await mark('swiglu');
  const dn = T(e.linear(a, p.d));
  await mark('linear down');
  const out = e.add(h1, dn);
  await mark('add');
  return { out, k: kc, v: vc, temps };
}

// ---- the same layer in ONNX ------------------------------------------------------------------------
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

/** The layer as an ONNX model; withPast adds past_k/past_v inputs concatenated before attention. */
export function buildOnnxLayer(w: LayerWeights, withPast: boolean): Uint8Array {
  const b = new GraphBuilder();
  const x = b.input('x', [1, 'S', D]);
  const cos = b.input('cos', [1, 'S', 1, HD]);
  const sin = b.input('sin', [1, 'S', 1, HD]);
  const mask = b.input('mask', ['S', 'T']);
  const pastK = withPast ? b.input('past_k', [1, 'P', G, HD]) : '';
  const pastV = withPast ? b.input('past_v', [1, 'P', G, HD]) : '';

  const two = b.scalar(2);
  const eps = b.scalar(CFG.eps);
  // HF's Qwen2RMSNorm pattern (ORT fuses it into SimplifiedLayerNormalization)
  const rms = (t: string, weight: Float32Array, name: string): string => {
    const ms = b.op('ReduceMean', [b.op('Pow', [t, two])], { axes: [-1], keepdims: 1 });
    const d = b.op('Div', [t, b.op('Sqrt', [b.op('Add', [ms, eps])])]);
    return b.op('Mul', [d, b.weight(name, weight, [D])]);
  };
  const linear = (t: string, wt: Float32Array, out: number, inp: number, name: string, bias?: Float32Array): string => {
    const y = b.op('MatMul', [t, b.weight(name, transpose(wt, out, inp), [inp, out])]);
    return bias ? b.op('Add', [y, b.weight(`${name}.bias`, bias, [out])]) : y;
  };
  const lo = b.ints([0]);
  const mid = b.ints([HD / 2]);
  const hi = b.ints([HD]);
  const ax3 = b.ints([3]);
  const rope = (t: string, out?: string): string => {
    const x1 = b.op('Slice', [t, lo, mid, ax3]);
    const x2 = b.op('Slice', [t, mid, hi, ax3]);
    const rot = b.op('Concat', [b.op('Neg', [x2]), x1], { axis: 3 });
    return b.op('Add', [b.op('Mul', [t, cos]), b.op('Mul', [rot, sin])], undefined, out);
  };

  const h = rms(x, w.ln1, 'input_layernorm.weight');
  const q = b.op('Reshape', [linear(h, w.wq, D, D, 'q_proj', w.bq), b.ints([0, 0, H, HD])]);
  const k = b.op('Reshape', [linear(h, w.wk, KVD, D, 'k_proj', w.bk), b.ints([0, 0, G, HD])]);
  const v = b.op('Reshape', [linear(h, w.wv, KVD, D, 'v_proj', w.bv), b.ints([0, 0, G, HD])]);
  const qr = rope(q);
  const kAll = withPast ? b.op('Concat', [pastK, rope(k)], { axis: 1 }, 'present_k') : rope(k, 'present_k');
  const vAll = withPast ? b.op('Concat', [pastV, v], { axis: 1 }, 'present_v') : b.op('Identity', [v], undefined, 'present_v');

  // GQA without copying K/V: queries grouped [1,G,rep,S,HD] against K^T [1,G,1,HD,T] (broadcast)
  const rep = H / G;
  const qs = b.op('Mul', [qr, b.scalar(1 / Math.sqrt(HD))]);
  const qg = b.op('Transpose', [b.op('Reshape', [qs, b.ints([0, 0, G, rep, HD])])], { perm: [0, 2, 3, 1, 4] });
  const kt = b.op('Reshape', [b.op('Transpose', [kAll], { perm: [0, 2, 3, 1] }), b.ints([1, G, 1, HD, -1])]);
  const vg = b.op('Reshape', [b.op('Transpose', [vAll], { perm: [0, 2, 1, 3] }), b.ints([1, G, 1, -1, HD])]);
  const probs = b.op('Softmax', [b.op('Add', [b.op('MatMul', [qg, kt]), mask])], { axis: -1 }); // [1,G,rep,S,T]
  const ctx = b.op('Transpose', [b.op('MatMul', [probs, vg])], { perm: [0, 3, 1, 2, 4] }); // [1,S,G,rep,HD]
  const att = b.op('Reshape', [ctx, b.ints([0, 0, D])]);

  const h1 = b.op('Add', [x, linear(att, w.wo, D, D, 'o_proj')]);
  const h2 = rms(h1, w.ln2, 'post_attention_layernorm.weight');
  const g = linear(h2, w.wg, F, D, 'gate_proj');
  const u = linear(h2, w.wu, F, D, 'up_proj');
  const act = b.op('Mul', [b.op('Mul', [g, b.op('Sigmoid', [g])]), u]);
  b.op('Add', [h1, linear(act, w.wd, D, F, 'down_proj')], undefined, 'out');

  b.output('out', [1, 'S', D]);
  b.output('present_k', [1, 'T', G, HD]);
  b.output('present_v', [1, 'T', G, HD]);
  return b.build(withPast ? 'qwen2_layer_decode' : 'qwen2_layer_prefill');
}

const QUIET_MS = 150;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const flushBuf = new Float64Array(8 << 20); // 64 MiB: twice this machine's L3
let flushSink = 0;
function flushCaches(): void {
  let s = 0;
  for (let i = 0; i < flushBuf.length; i += 8) s += flushBuf[i]; // one read per cache line
  flushSink += s;
}

/** HF-style cos/sin [1,S,1,HD] for positions p0..p0+S-1 (emb = cat(freqs, freqs)). */
function cosSin(p0: number, S: number): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(S * HD);
  const sin = new Float32Array(S * HD);
  for (let s = 0; s < S; s++)
    for (let f = 0; f < HD / 2; f++) {
      const a = (p0 + s) * Math.pow(CFG.theta, -(2 * f) / HD);
      cos[s * HD + f] = cos[s * HD + f + HD / 2] = Math.cos(a);
      sin[s * HD + f] = sin[s * HD + f + HD / 2] = Math.sin(a);
    }
  return { cos, sin };
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
  const w = makeWeights();
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
      const { cos, sin } = cosSin(c.P, c.S);
      const mask = new Float32Array(c.S * T);
      for (let i = 0; i < c.S; i++) for (let j = 0; j < T; j++) mask[i * T + j] = j <= c.P + i ? 0 : -Infinity;

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
