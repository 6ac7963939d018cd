/**
 * `latte-flow bench`: checks the options (before anything slow), finds the peers, runs the measures,
 * writes bench-report.md / .json / bench-ratios.svg into --out and prints a summary. Progress goes to
 * stderr, the summary to stdout. Option parsing itself is in lib/cli.ts with the other commands.
 */
import fs from 'node:fs';
import path from 'node:path';
import { getBackendInfo, LatteError } from '../index.js';
import { createContext } from './context.js';
import { cpuSample, foreignCores, machineInfo } from './machine.js';
import { selectMeasures } from './measures.js';
import { llamaPeer } from './peer-llama.js';
import { onnxruntimePeer } from './peer-onnxruntime.js';
import { pytorchPeer } from './peer-pytorch.js';
import { peerSummary, summary, writeReport, type Report } from './report.js';
import { runMeasures } from './runner.js';
import { nowMs } from './stats.js';
import type { BenchBackend, BenchOptions } from './types.js';

export interface BenchCommandOptions {
  quick?: boolean;
  filter?: string;
  threads?: number;
  layers?: number;
  reps?: number;
  warmup?: number;
  dtype?: 'f32' | 'bf16';
  backend: 'auto' | 'cpu' | 'cuda';
  python?: string;
  gguf?: string;
  out: string;
  version: string;
}

/** --out: made if missing; refused when it is a file or cannot be written (checked before the run). */
function prepareOut(dir: string): string {
  const abs = path.resolve(dir);
  const fail = (why: string) => new LatteError('E_ARG', `--out ${dir}: ${why}`);
  try {
    fs.mkdirSync(abs, { recursive: true });
  } catch (e) {
    throw fail(`cannot make the folder (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  if (!fs.statSync(abs).isDirectory()) throw fail('not a folder');
  const probe = path.join(abs, `.latte-flow-bench-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (e) {
    throw fail(`cannot write to the folder (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  return abs;
}

function backends(req: BenchCommandOptions['backend']): BenchBackend[] {
  const cuda = getBackendInfo().cuda;
  if (req === 'cuda' && !cuda.available) throw new LatteError('E_BACKEND_UNAVAILABLE', `--backend cuda: ${cuda.reason}`);
  if (req === 'cpu') return ['cpu'];
  if (req === 'cuda') return ['cuda'];
  return cuda.available ? ['cpu', 'cuda'] : ['cpu'];
}

export async function runBench(o: BenchCommandOptions): Promise<void> {
  const { measures, unknown } = selectMeasures(o.filter);
  if (unknown.length || measures.length === 0) throw new LatteError('E_ARG', `--filter: no measure matches ${unknown.join(', ') || o.filter}`);
  if (o.gguf && !fs.existsSync(o.gguf)) throw new LatteError('E_ARG', `--gguf ${o.gguf}: no such file`);
  const out = prepareOut(o.out);
  const bks = backends(o.backend);
  const info = getBackendInfo();
  const options: BenchOptions = {
    threads: o.threads ?? info.cpu.cores,
    quick: !!o.quick,
    layers: o.layers ?? 2,
    reps: o.reps ?? (o.quick ? 2 : 5),
    warmup: o.warmup ?? 1,
    dtype: o.dtype ?? 'bf16',
  };
  const log = (line: string) => process.stderr.write(`latte-flow bench: ${line}\n`);
  const machine = machineInfo();
  log(`${measures.length} measure${measures.length > 1 ? 's' : ''} on ${bks.join(' + ')}, ${options.threads} thread${options.threads > 1 ? 's' : ''}, ${options.reps} repetitions${options.quick ? ' (quick)' : ''}; ${machine.cpu}`);
  const peers = [pytorchPeer(o.python), await onnxruntimePeer(), await llamaPeer(o.gguf)];
  for (const p of peers) log(`peer ${p.title}: ${p.status.available ? p.status.version : `${p.status.reason} (${p.status.install})`}`);

  const ctx = createContext(options, log);
  const t0 = nowMs();
  const cpu0 = cpuSample();
  let results;
  try {
    results = await runMeasures(ctx, { measures, backends: bks, peers });
  } finally {
    for (const p of peers) await p.close().catch(() => undefined);
    ctx.dispose();
  }
  const c = info.cpu;
  const report: Report = {
    tool: 'latte-flow bench',
    version: o.version,
    date: new Date().toISOString(),
    machine: {
      ...machine,
      cpuFlags: { avx2: c.avx2, fma: c.fma, avx512f: c.avx512f, avx512bf16: c.avx512bf16, amxBf16: c.amxBf16, amxPermitted: c.amxPermitted },
      cuda: info.cuda.available ? `available (${info.cuda.device})` : `not available (${info.cuda.reason})`,
      otherLoadCores: foreignCores(cpu0, cpuSample(), machine.cores),
    },
    options: { ...options, backends: bks, ...(o.filter ? { filter: o.filter } : {}), ...(o.gguf ? { gguf: o.gguf } : {}) },
    peers: peerSummary(peers),
    results,
    seconds: (nowMs() - t0) / 1e3,
  };
  const files = writeReport(out, report);
  console.log(summary(report));
  console.log(`\nwrote ${files.md}, ${files.json} and ${files.svg}`);
  if (!results.some((r) => r.sides[0].median !== undefined)) throw new LatteError('E_INTERNAL', `no measure ran (see ${files.md})`);
}
