// `npm run test:gpu`: the one prepared script for a machine with an NVIDIA GPU (engineering.md, "The
// GPU script"). It prints the backend info, runs the CUDA op tests and the CUDA model parity with
// LATTE_REQUIRE_CUDA=1 (a missing device FAILS them instead of skipping), then the GPU benchmark
// (benchmarks/gpu.ts), and ends with `N passed, N failed`. Needs build/Release (built with CUDA)
// and the runtime node packages plus ava and tsx; no onnxruntime-node, no registry.
//
//   node --import=tsx tools/test-gpu.mjs [--no-bench] [--quick] [--sanitize] [--match PATTERN] [--dry-run]
//     --sanitize  run the CUDA op tests under compute-sanitizer (memcheck): slow, for a first run
//                 that fails or faults
//     --dry-run   no GPU: a CPU engine stands in (LATTE_CUDA_DRY_RUN=1, benchmark --cpu-as-cuda
//                 --quick --skip gen): checks this script, the tests and the bundle, not CUDA
// Logs go to $OUT (the device tool's output folder) when set, else build/test-gpu/.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outDir = process.env.OUT || path.join(root, 'build/test-gpu');
const dryRun = args.includes('--dry-run');
fs.mkdirSync(outDir, { recursive: true });
const started = Date.now();

function run(cmd, argv, env = {}, logName = null) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const log = logName ? fs.createWriteStream(path.join(outDir, logName)) : null;
    const take = (d) => {
      out += d;
      process.stdout.write(d);
      log?.write(d);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => {
      log?.end();
      resolve({ code, out });
    });
    child.on('error', (e) => resolve({ code: 127, out: `# ${e.message}\n` }));
  });
}
const count = (out, key) => Number(out.match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? 0);

// 1. what this machine and build offer
const { getBackendInfo } = await import('../lib/index.ts');
const info = getBackendInfo();
console.log('# backend info');
console.log(JSON.stringify(info, null, 1));
const smi = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,clocks.max.sm', '--format=csv,noheader'], { encoding: 'utf8' });
console.log(`# nvidia-smi: ${smi.status === 0 ? smi.stdout.trim() : 'not available'}`);
let passed = 0;
let failed = 0;
if (!info.cuda.available && !dryRun) {
  console.log(`not ok - CUDA is not usable here: ${info.cuda.reason}`);
  failed++;
}

// 2. CUDA op tests and CUDA model parity (ava, TAP); only the tests titled `cuda: ...`
const match = args.includes('--match') ? args[args.indexOf('--match') + 1] : dryRun ? 'cuda(dry run on cpu): *' : 'cuda: *';
const files = ['test/cuda/*.test.ts', 'test/parity/*.test.ts'];
const ava = path.join(root, 'node_modules/ava/entrypoints/cli.mjs');
const env = dryRun ? { LATTE_REQUIRE_CUDA: '', LATTE_CUDA_DRY_RUN: '1' } : { LATTE_REQUIRE_CUDA: '1', LATTE_CUDA_DRY_RUN: '' };
let r;
if (args.includes('--sanitize')) {
  console.log('# CUDA op tests under compute-sanitizer (memcheck)');
  r = await run('compute-sanitizer', ['--tool', 'memcheck', '--error-exitcode', '99', process.execPath, ava, '--tap', '--serial', '--match', match, 'test/cuda/*.test.ts'], env, 'sanitize.tap');
} else {
  console.log(`# CUDA tests: ${files.join(' ')} --match '${match}'`);
  r = await run(process.execPath, [ava, '--tap', '--match', match, ...files], env, 'test-gpu.tap');
}
const pass = count(r.out, 'pass');
const fail = count(r.out, 'fail');
const skip = count(r.out, 'skip');
passed += pass;
failed += fail + (r.code !== 0 && fail === 0 ? 1 : 0) + (pass + fail === 0 ? 1 : 0);
if (skip) {
  console.log(`not ok - ${skip} CUDA tests were skipped on the GPU machine`);
  failed++;
}

// 3. the GPU benchmark (figures + device name to $OUT/gpu-bench.md)
if (!args.includes('--no-bench') && (info.cuda.available || dryRun)) {
  console.log('# GPU benchmark');
  const benchArgs = dryRun ? ['--cpu-as-cuda', '--quick', '--skip', 'gen'] : args.includes('--quick') ? ['--quick'] : [];
  const b = await run(process.execPath, ['--import=tsx', 'benchmarks/gpu.ts', ...benchArgs], {}, 'gpu-bench.log');
  if (b.code === 0) passed++;
  else {
    console.log(`not ok - benchmarks/gpu.ts exited with ${b.code}`);
    failed++;
  }
}

console.log(`# test:gpu took ${((Date.now() - started) / 1e3).toFixed(0)} s; logs in ${outDir}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
