// The op list is written once (native/core/op_list.h): the addon's names, lib/native.ts's OP_NAMES and
// the Engine's methods must all follow it, and every op must be tested on the CPU against a
// reference and on CUDA against the CPU (docs/architecture.md, "Adding an op").
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon, OP_NAMES } from '../lib/native.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (rel: string) => fs.readFileSync(path.join(root, rel), 'utf8');
const files = (dir: string) => fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.test.ts')).map((f) => path.join(dir, f));

// op_list.h rows: X(Id, "name", min, max, infer, run, flags)
const rows = [...read('native/core/op_list.h').matchAll(/X\((\w+), "(\w+)", \d+, \d+, \w+, \w+, (\w+)\)/g)].map((m) => ({ id: m[1], name: m[2], flags: m[3] }));

test('the native op list, the addon and lib/native.ts OP_NAMES agree', (t) => {
  t.true(rows.length >= 30, `op_list.h parsed: ${rows.length} rows`);
  const offered = rows.filter((r) => r.flags !== 'kInPlace').map((r) => r.name);
  t.deepEqual(loadAddon().opNames(), offered, 'the addon offers every row but the in-place ones, in order');
  t.deepEqual([...OP_NAMES], offered, 'lib/native.ts OP_NAMES is the same list');
  t.is(new Set(rows.map((r) => r.name)).size, rows.length, 'names are unique');
});

// Engine methods by the op they enqueue: the method whose body calls this.#op('name') / #op1('name').
function engineMethods(): Map<string, string> {
  const byOp = new Map<string, string>();
  let method = '';
  for (const line of read('lib/engine.ts').split('\n')) {
    const decl = line.match(/^ {2}(?:async )?(\w+)\(/);
    if (decl) method = decl[1];
    for (const m of line.matchAll(/this\.#op1?\('(\w+)'/g)) byOp.set(m[1], method);
  }
  return byOp;
}

test('every op has an Engine method, a CPU test against a reference and a CUDA test against the CPU', (t) => {
  const methods = engineMethods();
  // CPU: the op tests and the parity tests (PyTorch reference fixtures); CUDA: the CUDA-vs-CPU tests and
  // the parity tests that also run per backend (backendTest)
  const cpuTests = [...files('test/ops'), ...files('test/parity')].map(read);
  const parityPerBackend = files('test/parity').map(read).filter((s) => s.includes('backendTest('));
  const cudaTests = [...files('test/cuda').map(read), ...parityPerBackend];
  for (const name of OP_NAMES) {
    const m = methods.get(name);
    if (!m) {
      t.fail(`op '${name}' has no Engine method in lib/engine.ts`);
      continue;
    }
    const call = new RegExp(`\\.${m}\\(`);
    t.true(cpuTests.some((s) => call.test(s)), `op '${name}' (Engine.${m}) has a CPU test in test/ops or test/parity`);
    t.true(cudaTests.some((s) => call.test(s)), `op '${name}' (Engine.${m}) has a CUDA-vs-CPU test in test/cuda or a per-backend parity test`);
  }
  // in-place ops are internal to the models: the native tests (CPU) and the per-backend decode parity
  // test, whose reserved sequence writes its K/V rows with them
  for (const r of rows.filter((x) => x.flags === 'kInPlace')) {
    t.true(read('test/native/native_tests.cc').includes(`Op::${r.id}`), `in-place op '${r.name}' has a native CPU test`);
    const decode = read('test/parity/vlm-decode.test.ts');
    t.true(decode.includes('backendTest(') && decode.includes('reserved sequence'), `in-place op '${r.name}' runs in the per-backend reserved-sequence decode test`);
  }
});
