/**
 * Shared helpers for the TypeScript benchmarks. Machine facts, statistics and seeded data live in
 * lib/bench/ (`latte-flow bench` ships them) and are re-exported here for the scripts.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { machineInfo, printMachine } from '../lib/bench/machine.ts';

export { cpuSample, describeCpu, machineInfo, printMachine, type CpuSample, type MachineInfo } from '../lib/bench/machine.ts';
export { maxRelErr, median, nowMs, randn } from '../lib/bench/stats.ts';
export { decodeMsPerToken } from '../lib/bench/understanding.ts';

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
