/**
 * DRAM read roofline: runs the native bench_membw (benchmarks/native/bench_membw.cc: a vectorised sum
 * streaming through a 1 GiB f32 buffer, median and max of >= 5 passes) and parses its JSON line.
 * A memory-bound decode step (every weight read once per token) cannot beat bytes / this bandwidth.
 *
 * The binary is the newest of build-bench/, build/, build/Release/, build-bench/Release/ (as run.ts finds
 * bench_linear), or the one named by LATTE_BENCH_BIN / opts.binary. Build it without touching build/:
 *   cmake -S . -B build-bench -DLATTE_CUDA=OFF -DLATTE_NATIVE_TESTS=OFF && cmake --build build-bench --target bench_membw -j2
 *
 * Run alone: node --import=tsx benchmarks/membw.ts [--threads 1,2] [--mib 1024] [--reps 7] [--bin PATH]
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAsScript, type Row } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface MembwOptions {
  /** buffer size in MiB (default 1024: far beyond any L3) */
  mib?: number;
  /** timed passes (>= 5; default 7) */
  reps?: number;
  /** path of bench_membw (default: LATTE_BENCH_BIN, else the newest build) */
  binary?: string;
}

export interface MembwResult {
  gbpsMedian: number;
  gbpsMax: number;
}

/** The newest built bench_membw, or undefined. */
export function findMembwBinary(): string | undefined {
  const env = process.env.LATTE_BENCH_BIN;
  if (env) return existsSync(env) ? env : undefined;
  const found = ['build-bench', 'build', 'build/Release', 'build-bench/Release']
    .map((dir) => path.join(root, dir, 'bench_membw'))
    .filter((p) => existsSync(p));
  return found.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

/** Streaming-read bandwidth in GB/s (1e9 bytes/s) with `threads` threads. */
export async function measureMembw(threads: number, opts: MembwOptions = {}): Promise<MembwResult> {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`measureMembw: threads must be a positive integer, got ${threads}`);
  const bin = opts.binary ?? findMembwBinary();
  if (!bin || !existsSync(bin))
    throw new Error(`bench_membw is not built${bin ? ` (${bin} does not exist)` : ''}; see the header of benchmarks/membw.ts`);
  const args = ['--threads', String(threads)];
  if (opts.mib !== undefined) args.push('--mib', String(opts.mib));
  if (opts.reps !== undefined) args.push('--reps', String(opts.reps));
  const stdout: string = await new Promise((resolve, reject) => {
    execFile(bin, args, { encoding: 'utf8', maxBuffer: 1 << 20 }, (err, out, errOut) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}${errOut ? `\n${errOut.trim()}` : ''}`));
      else resolve(out);
    });
  });
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as { bench?: string; threads?: number; gbps_median?: number; gbps_max?: number };
    if (r.bench === 'membw' && r.threads === threads && typeof r.gbps_median === 'number' && typeof r.gbps_max === 'number')
      return { gbpsMedian: r.gbps_median, gbpsMax: r.gbps_max };
  }
  throw new Error(`bench_membw printed no result line for ${threads} thread(s):\n${stdout}`);
}

await runAsScript(import.meta.url, async (o): Promise<Row[]> => {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const mib = opt('--mib') !== undefined ? Number(opt('--mib')) : o.quick ? 256 : undefined;
  const reps = opt('--reps') !== undefined ? Number(opt('--reps')) : undefined;
  const binary = opt('--bin');
  const rows: Row[] = [];
  for (const t of o.threads ?? [1, 2]) {
    const r = await measureMembw(t, { mib, reps, binary });
    rows.push({
      bench: 'membw',
      case: `stream read ${mib ?? 1024} MiB ${t}t`,
      figure: `${r.gbpsMedian.toFixed(2)} GB/s median (max ${r.gbpsMax.toFixed(2)})`,
    });
  }
  return rows;
});
