/**
 * `npm run bench`: the CPU benchmarks in one run, then one summary table.
 *   1. native bench_linear (engine linear vs raw oneDNN), if built: the newer of build/ and build-bench/
 *   2. decoder layer vs onnxruntime-node (benchmarks/decoder-layer.ts, one child process per thread
 *      count; one thread runs under `taskset -c 0`)
 *   3. our linear vs onnxruntime's MatMul on the layer's GEMM shapes (benchmarks/linear-vs-ort.ts)
 *   4. stream overheads (benchmarks/stream.ts), plus native bench_stream if built
 * Figures are ratios measured within this run (interleaved rounds, medians); absolute times on a
 * shared VM swing by tens of percent between minutes.
 *
 * Options: --quick (fewer/shorter rounds), --threads 1,2, --skip native,decoder,gemm,stream, --profile
 * Build the native benchmarks without touching build/:
 *   cmake -S . -B build-bench -DLATTE_CUDA=OFF -DLATTE_NATIVE_TESTS=OFF && cmake --build build-bench -j2
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSample, describeCpu, machineInfo, printMachine, printRows, type Row } from './common.ts';
import { runStreamBench } from './stream.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const profile = args.includes('--profile');
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const threads = (opt('--threads') ?? '1,2').split(',').map(Number);
const skip = new Set((opt('--skip') ?? '').split(',').filter(Boolean));

/** The most recently built copy of a native benchmark (cmake-js builds them into build/ too). */
function findBinary(name: string): string | undefined {
  const found = ['build-bench', 'build', 'build/Release', 'build-bench/Release']
    .map((dir) => path.join(root, dir, name))
    .filter((p) => existsSync(p));
  return found.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

/** Runs a child benchmark, echoing its output; returns its machine-readable lines. */
async function runChild(cmd: string[]): Promise<{ results: Record<string, string>[]; rows: Row[] }> {
  const results: Record<string, string>[] = [];
  const rows: Row[] = [];
  let buf = '';
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('RESULT ')) results.push(Object.fromEntries(line.slice(7).split(' ').map((kv) => kv.split('=') as [string, string])));
      else if (line.startsWith('ROWS ')) rows.push(...(JSON.parse(line.slice(5)) as Row[]));
      else console.log(line);
    }
  });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (code !== 0) throw new Error(`${cmd.join(' ')} exited with ${code}`);
  return { results, rows };
}

/** One thread on a multi-core machine: pin the child to one CPU so both sides share it. */
function pinned(t: number, cmd: string[]): string[] {
  return t === 1 && m.cores > 1 && existsSync('/usr/bin/taskset') ? ['taskset', '-c', '0', ...cmd] : cmd;
}

const rows: Row[] = [];
const m = machineInfo();
console.log('latte-flow benchmarks (CPU)');
printMachine(m);
console.log(`threads:  ${threads.join(', ')}${quick ? ' (quick)' : ''}\n`);
const t0 = performance.now();
const cpu0 = cpuSample();

if (!skip.has('native')) {
  const bin = findBinary('bench_linear');
  if (!bin) {
    console.log('bench_linear not built (see the header of benchmarks/run.ts); skipped\n');
    rows.push({ bench: 'linear', case: 'engine vs raw oneDNN', figure: 'not built: skipped' });
  } else {
    console.log(`== ${path.relative(root, bin)}`);
    const { results: res } = await runChild([bin, ...(quick ? ['--quick'] : []), '--threads', threads.join(',')]);
    for (const r of res)
      rows.push({
        bench: 'linear',
        case: `M=${r.m} K=${r.k} N=${r.n} ${r.threads}t`,
        figure: `${Number(r.ratio).toFixed(3)}x raw (glue ${Number(r.glue_pct).toFixed(1)}%; ${Number(r.engine_gflops).toFixed(1)} vs ${Number(r.raw_gflops).toFixed(1)} GFLOP/s)`,
        target: 'glue <= 5%',
      });
    console.log();
  }
}

if (!skip.has('decoder')) {
  console.log('== decoder layer vs onnxruntime-node');
  for (const t of threads) {
    const script = path.join(root, 'benchmarks', 'decoder-layer.ts');
    const cmd = [process.execPath, '--import=tsx', script, '--emit-rows', '--threads', String(t), ...(quick ? ['--quick'] : []), ...(profile ? ['--profile'] : [])];
    const { rows: r } = await runChild(pinned(t, cmd));
    rows.push(...r);
  }
  console.log();
}

if (!skip.has('gemm')) {
  console.log('== linear vs onnxruntime MatMul (the layer\'s GEMM shapes)');
  for (const t of threads) {
    const script = path.join(root, 'benchmarks', 'linear-vs-ort.ts');
    const { rows: r } = await runChild(pinned(t, [process.execPath, '--import=tsx', script, '--emit-rows', '--threads', String(t), ...(quick ? ['--quick'] : [])]));
    rows.push(...r);
  }
  console.log();
}

if (!skip.has('stream')) {
  console.log('== stream');
  const { rows: r } = await runStreamBench({ threads, quick });
  rows.push(...r);
  const bin = findBinary('bench_stream');
  if (bin && !skip.has('native')) {
    const { results: res } = await runChild([bin, '--threads', threads.join(',')]);
    for (const s of res)
      rows.push({
        bench: 'stream',
        case: `C++ API only ${s.threads}t`,
        figure: `${Number(s.enqueue_us).toFixed(2)} us/op enqueue, ${Number(s.total_us).toFixed(2)} with run; fence ${Number(s.fence_us).toFixed(1)} us`,
      });
  }
  console.log();
}

const load = describeCpu(cpu0, cpuSample(), m.cores);
console.log(`during this run: ${load}${/other processes used 0\.[0-1]/.test(load) ? '' : ' (figures disturbed: rerun on a quiet machine)'}`);
console.log(`== summary (${m.cpu}, ${m.cores} cores; ${m.features}; ${m.gemm}; ${m.date}; ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
printRows(rows);
