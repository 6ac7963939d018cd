/**
 * Machine facts and CPU accounting for a benchmark run: what a reader of a report needs to judge its
 * figures (CPU model, cores, ISA flags, GEMM library, Node, onnxruntime-node) and how busy the rest of
 * the machine was meanwhile (figures on a shared VM swing by tens of percent).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { getBackendInfo } from '../index.js';

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

/** The installed version of an optional package, resolved from this package (as a dynamic import would). */
export function packageVersion(name: string): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
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
  return { date, cpu: cpuModel(), cores: c.cores, features: flags, gemm: c.gemm, node: process.version, ort: packageVersion('onnxruntime-node') ?? 'not installed' };
}

export function printMachine(m: MachineInfo, log: (s: string) => void = console.log): void {
  log(`date:     ${m.date}`);
  log(`cpu:      ${m.cpu}, ${m.cores} cores`);
  log(`features: ${m.features}`);
  log(`gemm:     ${m.gemm}; node ${m.node}; onnxruntime-node ${m.ort}`);
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

/** Cores other processes kept busy between two samples, on average (undefined without /proc). */
export function foreignCores(a: CpuSample | undefined, b: CpuSample | undefined, cores: number): number | undefined {
  if (!a || !b || b.total - a.total <= 0) return undefined;
  return (Math.max(0, b.busy - a.busy - (b.own - a.own)) / (b.total - a.total)) * cores;
}

/** "other processes used 0.05 of 2 cores on average; steal 0.3%" between two samples. */
export function describeCpu(a: CpuSample | undefined, b: CpuSample | undefined, cores: number): string {
  if (!a || !b) return 'cpu accounting unavailable';
  const total = b.total - a.total;
  if (total <= 0) return 'cpu accounting: no ticks';
  return `other processes used ${foreignCores(a, b, cores)!.toFixed(2)} of ${cores} cores on average; steal ${((100 * (b.steal - a.steal)) / total).toFixed(1)}%`;
}
