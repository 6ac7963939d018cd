/** Shared helpers for the TypeScript benchmarks: machine facts, statistics, seeded data. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { getBackendInfo, type Qwen2VL } from '../lib/index.ts';

export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  features: string;
  gemm: string;
  node: string;
  ort: string;
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function ortVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return (require('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

export function machineInfo(): MachineInfo {
  const info = getBackendInfo();
  const c = info.cpu;
  const flags = Object.entries({ avx2: c.avx2, fma: c.fma, avx512f: c.avx512f, avx512bf16: c.avx512bf16, amxBf16: c.amxBf16, amxPermitted: c.amxPermitted })
    .map(([k, v]) => `${k}=${v ? 1 : 0}`)
    .join(' ');
  let date = new Date().toISOString();
  try {
    date = execFileSync('date', { encoding: 'utf8' }).trim();
  } catch {
    // keep the ISO date
  }
  return { date, cpu: cpuModel(), cores: c.cores, features: flags, gemm: c.gemm, node: process.version, ort: ortVersion() };
}

export function printMachine(m: MachineInfo, log: (s: string) => void = console.log): void {
  log(`date:     ${m.date}`);
  log(`cpu:      ${m.cpu}, ${m.cores} cores`);
  log(`features: ${m.features}`);
  log(`gemm:     ${m.gemm}; node ${m.node}; onnxruntime-node ${m.ort}`);
}

export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

export const nowMs = (): number => performance.now();

/** Deterministic normal(0, scale) data (xorshift + Box-Muller). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next())) * scale;
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** max |a - b| / max |b|: the error relative to the reference's scale. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return m > 0 ? d / m : d;
}

/**
 * ms per greedy token after the text prompt `ids` (positions 0..S-1), `n` tokens, the next step enqueued
 * before each read (as answer() does), on a sequence of `capacity` (none: a cache that grows).
 */
export async function decodeMsPerToken(m: Qwen2VL, ids: Int32Array, n: number, capacity?: number): Promise<number> {
  const S = ids.length;
  const seq = m.newSequence(capacity);
  const logits = m.prefill(seq, ids, [], new Int32Array(3 * S).map((_, i) => i % S));
  let tok = m.sample(seq, logits);
  logits.dispose(); // its memory returns once the draw ran
  await tok.read();
  const t0 = nowMs();
  for (let i = 0; i < n; i++) {
    const next = m.decode(seq, tok);
    await tok.read();
    tok.dispose();
    tok = next;
  }
  await tok.read();
  const ms = (nowMs() - t0) / n;
  tok.dispose();
  seq.release();
  return ms;
}

/** A row of a summary table (printed by run.ts and each benchmark's own main). */
export interface Row {
  bench: string;
  case: string;
  figure: string;
  target?: string;
}

export function printRows(rows: Row[], log: (s: string) => void = console.log): void {
  const cols: (keyof Row)[] = ['bench', 'case', 'figure', 'target'];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (vals: string[]): string => '| ' + vals.map((v, i) => v.padEnd(width[i])).join(' | ') + ' |';
  log(line(cols));
  log('|' + width.map((n) => '-'.repeat(n + 2)).join('|') + '|');
  for (const r of rows) log(line(cols.map((c) => String(r[c] ?? ''))));
}

export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && url === pathToFileURL(path.resolve(process.argv[1])).href;
}

export interface ScriptOptions {
  threads?: number[];
  quick: boolean;
  profile: boolean;
}

/**
 * The command line shared by the bench scripts, when `url` is the script being run: --threads 1,2,
 * --quick, --profile, and --emit-rows (for run.ts: rows as one JSON line, no machine header).
 */
export async function runAsScript(url: string, bench: (o: ScriptOptions) => Promise<Row[]>): Promise<void> {
  if (!isMain(url)) return;
  const args = process.argv.slice(2);
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? args[ti + 1].split(',').map(Number) : undefined;
  const emit = args.includes('--emit-rows');
  if (!emit) printMachine(machineInfo());
  const rows = await bench({ threads, quick: args.includes('--quick'), profile: args.includes('--profile') });
  if (emit) console.log(`ROWS ${JSON.stringify(rows)}`);
  else {
    console.log();
    printRows(rows);
  }
}

/** CPU accounting for a run: what this process (and its reaped children) used vs the machine. */
export interface CpuSample {
  busy: number; // machine busy ticks (all CPUs, excluding idle/iowait/steal)
  steal: number; // ticks the hypervisor gave to someone else
  total: number;
  own: number; // this process + waited-for children
}

export function cpuSample(): CpuSample | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu;
    const st = readFileSync('/proc/self/stat', 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number); // f[0] is field 3 (state)
    const own = f[11] + f[12] + f[13] + f[14]; // utime stime cutime cstime
    return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal, own };
  } catch {
    return undefined;
  }
}

/** "other processes: 0.05 cores, steal 0.3%" between two samples. */
export function describeCpu(a: CpuSample | undefined, b: CpuSample | undefined, cores: number): string {
  if (!a || !b) return 'cpu accounting unavailable';
  const total = b.total - a.total;
  if (total <= 0) return 'cpu accounting: no ticks';
  const foreign = Math.max(0, b.busy - a.busy - (b.own - a.own));
  return `other processes used ${((foreign / total) * cores).toFixed(2)} of ${cores} cores on average; steal ${((100 * (b.steal - a.steal)) / total).toFixed(1)}%`;
}
