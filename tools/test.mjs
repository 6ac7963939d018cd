// `npm test`: the native core tests (TAP, no Node), the PyTorch reference's unit tests (Debian's
// python3 with python3-torch; reported as skipped where torch is missing, a failure when
// LATTE_REQUIRE_REFERENCE=1 as in CI), the type checker and the ava suite (TAP), then one closing line
// `N passed, N failed[, N skipped]` that CI reads. Exits non-zero if anything failed or did not run.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2); // extra ava arguments, e.g. a file filter

function run(cmd, argv) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('close', (code) => resolve({ code, out }));
    child.on('error', (e) => resolve({ code: 127, out: `# ${e.message}\n` }));
  });
}

function count(out, key) {
  const m = out.match(new RegExp(`^# ${key} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

let passed = 0;
let failed = 0;
let skipped = 0;

const nativeBin = ['build/latte_native_tests', 'build/Release/latte_native_tests'].map((p) => path.join(root, p)).find((p) => fs.existsSync(p));
if (!nativeBin) {
  console.log('not ok - native tests: build/latte_native_tests is missing (run `npm run build`)');
  failed++;
} else if (args.length === 0) {
  const r = await run(nativeBin, []);
  const ok = (r.out.match(/^ok \d+/gm) ?? []).length;
  const bad = (r.out.match(/^not ok \d+/gm) ?? []).length;
  passed += ok;
  failed += bad + (r.code !== 0 && bad === 0 ? 1 : 0);
}

if (args.length === 0) {
  // The reference runs on Debian's system python (python3-torch), not a pyenv python first on PATH.
  const py = '/usr/bin/python3';
  const probe = await run(py, ['-c', 'import torch, numpy; print("# reference: torch", torch.__version__)']);
  if (probe.code === 0) {
    const r = await run(py, ['tools/reference/run_tests.py']);
    const m = r.out.match(/^reference: (\d+) passed, (\d+) failed/m);
    passed += m ? Number(m[1]) : 0;
    failed += m ? Number(m[2]) : 1;
    if (m && r.code !== 0 && Number(m[2]) === 0) failed++;
  } else if (process.env.LATTE_REQUIRE_REFERENCE === '1') {
    console.log('not ok - reference tests: /usr/bin/python3 cannot import torch (apt-get install python3-torch python3-numpy)');
    failed++;
  } else {
    console.log('# SKIP reference tests: /usr/bin/python3 has no torch (apt-get install python3-torch python3-numpy)');
    skipped++;
  }
}

if (args.length === 0) {
  // The type checker over lib, tests, benchmarks and tools: a test comparing values of types that
  // cannot be equal never fails, and only the checker sees it.
  const r = await run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.check.json', '--pretty', 'false']);
  if (r.code === 0) {
    console.log('ok - typecheck (tsc -p tsconfig.check.json)');
    passed++;
  } else {
    console.log('not ok - typecheck (tsc -p tsconfig.check.json)');
    failed++;
  }
}

const ava = await run(process.execPath, [path.join(root, 'node_modules/ava/entrypoints/cli.mjs'), '--tap', ...args]);
const avaPass = count(ava.out, 'pass');
const avaFail = count(ava.out, 'fail');
passed += avaPass;
failed += avaFail;
skipped += count(ava.out, 'skip') + count(ava.out, 'todo');
if (ava.code !== 0 && avaFail === 0) failed++; // a crash or an uncaught error outside a test
if (avaPass + avaFail === 0) failed++; // ava ran nothing

console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
