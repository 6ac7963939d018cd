/**
 * The GPU benchmark (npm run test:gpu runs it last; performance.md section 5), CUDA vs the CPU
 * backend on the same machine, and PyTorch (cuBLAS, SDPA) where python3 has torch with a GPU:
 *  1. linear at the model's shapes: M = 1 / 64 / 256 rows x (K, N) = (1536, 1536), (1536, 8960),
 *     (8960, 1536); bf16 packed weights (tensor cores; GEMV at M = 1) and f32.
 *  2. attention at the project's shapes: generator image queries with TCRA (64 tokens after a
 *     16-token prompt, 12 / 2 heads, d 128), VLM prefill (1024 causal), vision (1024 full, 16 heads,
 *     d 80), decode (1 query over 1024 keys).
 *  3. generation step of a real-scale random generator (Qwen2-VL-2B widths, 28 layers, K = 4, CFG,
 *     64 image tokens, bf16): group step vs full depth (target <= 1.10 / K), ms per 40-step image;
 *     the CPU's group step on a 7-layer model of the same widths (one group's work) for the ratio.
 *  4. VLM decode per token on a random Qwen2-VL of real widths (4 layers, bf16): a reserved K/V cache
 *     whose recorded step replays as one CUDA graph (what answer() does) vs the same step op by op vs
 *     a cache that grows by concatenation.
 * Op timings enqueue R repetitions and wait once (a fence): they include the engine's per-op host
 * cost, which is what a caller gets. Writes one markdown file (table + JSON) with the device name:
 * $OUT/gpu-bench.md, or benchmarks/gpu-results.md when OUT is unset.
 *
 *   node --import=tsx benchmarks/gpu.ts [--quick] [--skip gemm,attention,gen,decode,torch] [--layers 28] [--cpu-as-cuda]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, GenerationStream, getBackendInfo, Qwen2VL, timeSchedule, type Tensor } from '../lib/index.ts';
import { randomPrompt } from '../lib/bench/generation.ts';
import type { AttentionCase } from '../test/helpers/naive-ops.ts';
import { REAL_SCALE, writeRandomGenerator } from '../lib/bench/random-generator.ts';
import { writeRandomQwen2VLIfMissing } from '../lib/bench/random-qwen2vl.ts';
import { decodeMsPerToken, machineInfo, median, nowMs, randn, type Row } from './common.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const skip = new Set((args.includes('--skip') ? args[args.indexOf('--skip') + 1] : '').split(','));
const LAYERS = args.includes('--layers') ? Number(args[args.indexOf('--layers') + 1]) : 28;
const cpuThreads = os.cpus().length;
// --cpu-as-cuda: a CPU engine stands in for CUDA, to check this script on a machine with no GPU
const cpuAsCuda = args.includes('--cpu-as-cuda');

/** ms per call of `op` (its output disposed at once), R calls then one fence; R sized to ~budget ms. */
async function perCall(e: Engine, op: () => Tensor, budgetMs: number, maxReps = 200): Promise<number> {
  op().dispose();
  await e.fence();
  let t0 = nowMs();
  op().dispose();
  await e.fence();
  const one = Math.max(nowMs() - t0, 1e-3);
  const reps = Math.max(2, Math.min(maxReps, Math.ceil(budgetMs / one)));
  t0 = nowMs();
  for (let i = 0; i < reps; i++) op().dispose();
  await e.fence();
  return (nowMs() - t0) / reps;
}

// ---- 1. GEMM -------------------------------------------------------------------------------------
interface GemmCase {
  key: string;
  M: number;
  K: number;
  N: number;
  dtype: 'bf16' | 'f32';
  reps: number;
}
const GEMMS: GemmCase[] = [];
for (const dtype of ['bf16', 'f32'] as const)
  for (const M of [1, 64, 256])
    for (const [K, N] of [[1536, 1536], [1536, 8960], [8960, 1536]]) GEMMS.push({ key: `${dtype} ${M}x${K}x${N}`, M, K, N, dtype, reps: 50 });

async function gemm(cuda: Engine, cpu: Engine, torch: TorchResult | null): Promise<Row[]> {
  const rows: Row[] = [];
  for (const g of GEMMS) {
    const run = async (e: Engine, budget: number) => {
      const x = e.tensor(randn(g.M * g.K, 1), [g.M, g.K]);
      const w = e.packLinear(e.tensor(randn(g.N * g.K, 2, 0.02), [g.N, g.K]), g.dtype);
      const ms = await perCall(e, () => e.linear(x, w), budget, e === cuda ? 200 : 5);
      x.dispose();
      w.dispose();
      return ms;
    };
    const gpu = await run(cuda, quick ? 20 : 60);
    const host = await run(cpu, quick ? 50 : 300);
    const tflops = (2 * g.M * g.K * g.N) / (gpu * 1e-3) / 1e12;
    const gbs = (g.N * g.K * (g.dtype === 'bf16' ? 2 : 4)) / (gpu * 1e-3) / 1e9;
    const t = torch?.gemm[g.key];
    rows.push({
      bench: 'gpu linear',
      case: `${g.key}`,
      figure: `${gpu.toFixed(4)} ms (${g.M <= 8 ? `weights ${gbs.toFixed(0)} GB/s` : `${tflops.toFixed(1)} TFLOP/s`}); CPU ${host.toFixed(3)} ms = ${(host / gpu).toFixed(1)}x` + (t ? `; torch ${t.toFixed(4)} ms -> ours/torch speed ${(t / gpu).toFixed(2)}` : ''),
      target: g.M > 1 && g.dtype === 'bf16' ? '>= 0.9 x torch' : '',
    });
  }
  return rows;
}

// ---- 2. attention --------------------------------------------------------------------------------
// the op tests' attention case (test/helpers/naive-ops.ts) less what the benchmark does not vary
interface AttnCase extends Omit<AttentionCase, 'prefixLen' | 'residual' | 'scale'> {
  key: string;
  mask: 'none' | 'causal';
  reps: number;
}
const ATTNS: AttnCase[] = [
  { key: 'generator (64 img q, 80 keys, TCRA)', B: 1, Sq: 64, Skv: 80, H: 12, G: 2, d: 128, mask: 'none', imageCol0: 16, reps: 100 },
  { key: 'generator 256x256 CFG batch (2 rows)', B: 2, Sq: 64, Skv: 80, H: 12, G: 2, d: 128, mask: 'none', imageCol0: 16, reps: 100 },
  { key: 'vlm prefill 1024 causal', B: 1, Sq: 1024, Skv: 1024, H: 12, G: 2, d: 128, mask: 'causal', reps: 20 },
  { key: 'vision 1024 full (16 heads, d 80)', B: 1, Sq: 1024, Skv: 1024, H: 16, G: 16, d: 80, mask: 'none', reps: 20 },
  { key: 'decode 1 query x 1024 keys', B: 1, Sq: 1, Skv: 1024, H: 12, G: 2, d: 128, mask: 'causal', reps: 100 },
];

async function attention(cuda: Engine, cpu: Engine, torch: TorchResult | null): Promise<Row[]> {
  const rows: Row[] = [];
  for (const a of ATTNS) {
    const run = async (e: Engine, budget: number, precision: 'f32' | 'bf16' = 'f32') => {
      const q = e.tensor(randn(a.B * a.Sq * a.H * a.d, 3), [a.B, a.Sq, a.H, a.d]);
      const k = e.tensor(randn(a.B * a.Skv * a.G * a.d, 4), [a.B, a.Skv, a.G, a.d]);
      const v = e.tensor(randn(a.B * a.Skv * a.G * a.d, 5), [a.B, a.Skv, a.G, a.d]);
      const tcra = a.imageCol0 !== undefined;
      const Ni = a.Skv - (a.imageCol0 ?? a.Skv);
      const res = tcra ? e.tensor(randn(a.B * a.H * a.Sq * Ni, 6), [a.B, a.H, a.Sq, Ni]) : undefined;
      const gate = tcra ? e.tensor(randn(a.B * a.H, 7), [a.B, a.H]) : undefined;
      const op = () => {
        const r = e.attention(q, k, v, { mask: a.mask, imageCol0: a.imageCol0, returnLogits: tcra, residual: res, gate, precision });
        r.logits?.dispose();
        return r.out;
      };
      return perCall(e, op, budget, e === cuda ? 200 : 5);
    };
    const gpu = await run(cuda, quick ? 20 : 60);
    const gpu16 = await run(cuda, quick ? 20 : 60, 'bf16'); // the tensor-core kernel where it applies (attention_tc.cu)
    const host = await run(cpu, quick ? 50 : 300);
    const causalFrac = a.mask === 'causal' && a.Sq === a.Skv ? 0.5 : 1;
    const tflops = (4 * a.B * a.H * a.Sq * a.Skv * a.d * causalFrac) / (gpu * 1e-3) / 1e12;
    const t32 = torch?.attention[`${a.key} f32`];
    const t16 = torch?.attention[`${a.key} bf16`];
    rows.push({
      bench: 'gpu attention (fp32)',
      case: a.key,
      figure: `${gpu.toFixed(4)} ms (${tflops.toFixed(2)} TFLOP/s); CPU ${host.toFixed(3)} ms = ${(host / gpu).toFixed(1)}x` + (t32 ? `; SDPA f32 ${t32.toFixed(4)} ms -> ours/SDPA speed ${(t32 / gpu).toFixed(2)} (bf16 SDPA ${t16?.toFixed(4)} ms)` : ''),
      target: '>= 0.8 x SDPA',
    });
    const tflops16 = (4 * a.B * a.H * a.Sq * a.Skv * a.d * causalFrac) / (gpu16 * 1e-3) / 1e12;
    rows.push({
      bench: 'gpu attention (bf16: tensor cores)',
      case: a.key,
      figure: `${gpu16.toFixed(4)} ms (${tflops16.toFixed(2)} TFLOP/s); ${(gpu / gpu16).toFixed(2)}x our fp32` + (t16 ? `; bf16 SDPA ${t16.toFixed(4)} ms -> ours/SDPA speed ${(t16 / gpu16).toFixed(2)}` : ''),
      target: '>= 1.0 x bf16 SDPA (issue 19)',
    });
  }
  return rows;
}

// ---- 3. generation step at real scale ------------------------------------------------------------
async function loadGen(e: Engine, layers: number, groups: number) {
  const dir = path.join(os.tmpdir(), `latte-flow-gpu-gen-${layers}-${groups}`);
  if (!fs.existsSync(path.join(dir, 'config.json'))) await writeRandomGenerator(dir, { ...REAL_SCALE, layers, groups, dtype: 'bf16' });
  const gen = GenerationStream.load(dir, e, 'bf16');
  await e.fence();
  return { gen, cond: randomPrompt(e, { ...REAL_SCALE, layers }, 16, 100), nul: randomPrompt(e, { ...REAL_SCALE, layers }, 4, 200) };
}

async function generation(cuda: Engine, cpu: Engine): Promise<Row[]> {
  const K = 4;
  const L = LAYERS;
  const t0 = nowMs();
  const m = await loadGen(cuda, L, K);
  const loadS = (nowMs() - t0) / 1e3;
  const x = cuda.noise([1, REAL_SCALE.latentChannels, ...REAL_SCALE.latentSize], 1);
  // one Euler step over layers [first, last) with CFG, waited for: ms
  const step = async (e: Engine, g: typeof m, xi: Tensor, t: number, first: number, last: number) => {
    const s0 = nowMs();
    const v = g.gen.velocityLayers(xi, t, first, last, g.cond, g.nul, 2);
    e.axpby(1, xi, -0.025, v).dispose();
    v.dispose();
    await e.fence();
    return nowMs() - s0;
  };
  const M = L / K;
  for (let i = 0; i < 3; i++) await step(cuda, m, x, 0.1, 0, M);
  await step(cuda, m, x, 0.5, 0, L);
  const group: number[] = [];
  const full: number[] = [];
  for (let r = 0; r < (quick ? 4 : 12); r++) {
    const k = r % K;
    group.push(await step(cuda, m, x, (k + 0.5) / K, k * M, (k + 1) * M));
    full.push(await step(cuda, m, x, 0.5, 0, L));
  }
  const g = median(group);
  const f = median(full);
  // one 40-step image (grouped, CFG), waited for once at the end
  const ts = timeSchedule(40);
  const image = async () => {
    const s0 = nowMs();
    let xx = x;
    for (let i = 0; i + 1 < ts.length; i++) {
      const k = m.gen.groupOf(ts[i]);
      const v = m.gen.velocity(xx, ts[i], k, m.cond, m.nul, 2);
      const next = cuda.axpby(1, xx, Math.fround(ts[i + 1] - ts[i]), v);
      v.dispose();
      if (xx !== x) xx.dispose();
      xx = next;
    }
    await xx.read();
    if (xx !== x) xx.dispose();
    return nowMs() - s0;
  };
  await image();
  const images: number[] = [];
  for (let r = 0; r < (quick ? 2 : 5); r++) images.push(await image());
  const launches = cuda.stats().capturedLaunches;
  // the same image with every op enqueued afresh (no programs, so no CUDA graphs)
  m.gen.usePrograms(false);
  await image();
  const eager: number[] = [];
  for (let r = 0; r < (quick ? 2 : 5); r++) eager.push(await image());
  m.gen.usePrograms(true);
  m.cond.release();
  m.nul.release();
  m.gen.dispose();
  const rows: Row[] = [
    { bench: 'gpu gen group step vs full depth', case: `2B widths, ${L} layers, K=${K}, 64 tokens, CFG, bf16`, figure: `${(g / f).toFixed(3)} (group ${g.toFixed(3)} ms, full ${f.toFixed(3)} ms; 1/K = ${(1 / K).toFixed(3)}; load ${loadS.toFixed(1)} s)`, target: `<= ${(1.1 / K).toFixed(3)}` },
    { bench: 'gpu gen image (40 steps, grouped, CFG)', case: `2B widths, ${L} layers, K=${K}, batch 1`, figure: `${median(images).toFixed(2)} ms/image (latent only, no VAE)`, target: '<= 15 ms (stretch 10)' },
    { bench: 'gpu gen image: CUDA graphs vs eager ops', case: `as above; ${launches} graph launches`, figure: `graphs ${median(images).toFixed(2)} ms vs eager ${median(eager).toFixed(2)} ms = ${(median(eager) / median(images)).toFixed(2)}x` },
  ];
  // the CPU's group step: a 7-layer model of the same widths run at full depth is one group's work
  const c = await loadGen(cpu, M, 1);
  const xc = cpu.noise([1, REAL_SCALE.latentChannels, ...REAL_SCALE.latentSize], 1);
  await step(cpu, c, xc, 0.5, 0, M);
  const cg: number[] = [];
  for (let r = 0; r < (quick ? 1 : 3); r++) cg.push(await step(cpu, c, xc, 0.5, 0, M));
  c.cond.release();
  c.nul.release();
  c.gen.dispose();
  rows.push({ bench: 'gpu gen group step, CPU vs CUDA', case: `${M} layers, CFG, bf16, CPU ${cpuThreads} threads`, figure: `CPU ${median(cg).toFixed(1)} ms vs CUDA ${g.toFixed(3)} ms = ${(median(cg) / g).toFixed(1)}x` });
  return rows;
}

// ---- VLM decode --------------------------------------------------------------------------------
async function decode(cuda: Engine): Promise<Row[]> {
  const layers = 4;
  const dir = path.join(os.tmpdir(), `latte-flow-gpu-vlm-${layers}l`);
  await writeRandomQwen2VLIfMissing(dir, { layers, visionDepth: 1, dtype: 'bf16', vocabSize: 32000 });
  const m = await Qwen2VL.load(dir, { engine: cuda, weights: 'bf16' });
  const S = 256;
  const N = quick ? 32 : 128;
  const ids = new Int32Array(S).map((_, i) => 1000 + i);
  const perToken = (capacity?: number) => decodeMsPerToken(m, ids, N, capacity);
  const launches0 = cuda.stats().capturedLaunches;
  const t: Record<'graph' | 'eager' | 'growing', number[]> = { graph: [], eager: [], growing: [] };
  await perToken(S + N);
  for (let r = 0; r < (quick ? 2 : 5); r++) {
    t.graph.push(await perToken(S + N));
    m.usePrograms(false);
    t.eager.push(await perToken(S + N));
    m.usePrograms(true);
    t.growing.push(await perToken());
  }
  const launches = cuda.stats().capturedLaunches - launches0;
  await m.dispose();
  const [g, e, w] = [median(t.graph), median(t.eager), median(t.growing)];
  const c = `${layers} layers of 2B widths, bf16, ${S}-token prompt, ${N} tokens`;
  return [
    { bench: 'gpu VLM decode per token: reserved cache, one graph per step', case: `${c}; ${launches} graph launches`, figure: `${g.toFixed(3)} ms/token (${(g / layers).toFixed(3)} ms per layer)` },
    { bench: 'gpu VLM decode: graph vs op by op (reserved cache)', case: c, figure: `${(e / g).toFixed(2)}x (op by op ${e.toFixed(3)} ms)` },
    { bench: 'gpu VLM decode: reserved + graph vs growing cache op by op', case: c, figure: `${(w / g).toFixed(2)}x (growing ${w.toFixed(3)} ms)` },
  ];
}

// ---- PyTorch anchors -----------------------------------------------------------------------------
interface TorchResult {
  torch: string;
  gemm: Record<string, number>;
  attention: Record<string, number>;
}
function torchAnchors(): TorchResult | null {
  const spec = JSON.stringify({ gemm: GEMMS.filter((g) => g.M > 1 || g.dtype === 'bf16'), attention: ATTNS });
  for (const py of ['python3', '/usr/bin/python3']) {
    try {
      const out = execFileSync(py, [path.join(here, 'gpu-torch.py')], { input: spec, encoding: 'utf8', timeout: 120_000, stdio: ['pipe', 'pipe', 'ignore'] });
      return JSON.parse(out.trim().split('\n').pop()!) as TorchResult;
    } catch {
      // try the next python, else no anchor
    }
  }
  return null;
}

// ---- main ----------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const info = getBackendInfo();
  if (!info.cuda.available && !cpuAsCuda) {
    console.error(`gpu benchmark: CUDA is not usable (${info.cuda.reason})`);
    process.exit(2);
  }
  const device = cpuAsCuda ? 'CPU standing in for CUDA (--cpu-as-cuda: figures mean nothing)' : info.cuda.device;
  const started = nowMs();
  const machine = machineInfo();
  console.log(`device: ${device}\ncpu: ${machine.cpu}, ${machine.cores} cores, ${machine.gemm}`);
  const torch = skip.has('torch') || cpuAsCuda ? null : torchAnchors();
  console.log(torch ? `PyTorch ${torch.torch} anchors measured` : 'no PyTorch anchor (python3 with torch and a GPU not found)');
  const cuda = new Engine({ backend: cpuAsCuda ? 'cpu' : 'cuda', threads: cpuAsCuda ? cpuThreads : 2 });
  const cpu = new Engine({ backend: 'cpu', threads: cpuThreads });
  const rows: Row[] = [];
  const section = async (name: string, f: () => Promise<Row[]>) => {
    if (skip.has(name)) return;
    const s0 = nowMs();
    try {
      rows.push(...(await f()));
    } catch (err) {
      rows.push({ bench: `gpu ${name}`, case: 'FAILED', figure: String(err instanceof Error ? err.message : err) });
    }
    console.log(`${name}: ${((nowMs() - s0) / 1e3).toFixed(1)} s`);
  };
  await section('gemm', () => gemm(cuda, cpu, torch));
  await section('attention', () => attention(cuda, cpu, torch));
  await section('gen', () => generation(cuda, cpu));
  await section('decode', () => decode(cuda));
  await cuda.dispose();
  await cpu.dispose();

  const table = ['| bench | case | figure | target |', '|---|---|---|---|', ...rows.map((r) => `| ${r.bench} | ${r.case} | ${r.figure} | ${r.target ?? ''} |`)];
  const json = { device, date: machine.date, cpu: machine.cpu, cores: machine.cores, node: machine.node, torch: torch?.torch ?? null, seconds: (nowMs() - started) / 1e3, rows };
  const md = [`# GPU benchmark: ${device}`, '', `${machine.date}; CPU ${machine.cpu} (${machine.cores} cores); node ${machine.node}; PyTorch ${torch?.torch ?? 'not found'}`, '', ...table, '', '```json', JSON.stringify(json, null, 1), '```', ''].join('\n');
  const outDir = process.env.OUT || here;
  const file = path.join(outDir, process.env.OUT ? 'gpu-bench.md' : 'gpu-results.md');
  fs.writeFileSync(file, md);
  console.log('\n' + table.join('\n'));
  console.log(`\nwritten to ${file} (${json.seconds.toFixed(0)} s)`);
}

await main();
