// The latte-flow command line, run as a child process: exit codes, one-line coded errors, help,
// and real generate / ask / inspect runs (on the tiny test model; the shipped model's runs are in
// test/shipped-model.test.ts).
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode as decodePng } from 'fast-png';

const root = fileURLToPath(new URL('..', import.meta.url));
const tiny = path.join(root, 'test/fixtures/tiny-model');

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), ...args], { cwd: root, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}

test('generate writes the PNGs, with a progress-free stderr when not a terminal', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'pic.png');
  const r = await cli('generate', 'a red circle', '-m', tiny, '-o', out, '--steps', '3', '--seed', '4', '--count', '2', '--threads', '1');
  t.is(r.code, 0, r.stderr);
  for (const f of ['pic-1.png', 'pic-2.png']) {
    const png = decodePng(fs.readFileSync(path.join(dir, f)));
    t.deepEqual([png.width, png.height], [16, 16]);
  }
  t.regex(r.stdout, /pic-2\.png: 16x16, seed 5/);
});

test('ask streams an answer; inspect shows backends and the model', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const img = path.join(dir, 'q.png');
  t.is((await cli('generate', 'a square', '-m', tiny, '-o', img, '--steps', '2', '--guidance', '2/1')).code, 0, 'a weight per expert group');
  const a = await cli('ask', img, 'what is this?', '-m', tiny, '--max-tokens', '4');
  t.is(a.code, 0, a.stderr);
  t.true(a.stdout.endsWith('\n'));
  const i = await cli('inspect', '-m', tiny);
  t.is(i.code, 0, i.stderr);
  t.regex(i.stdout, /backends compiled: cpu/);
  t.regex(i.stdout, /generator: 4 layers in K = 2 groups/);
});

test('errors: one line with the code and exit 1; bad usage exits 2; --help exits 0', async (t) => {
  const missing = await cli('generate', 'x', '-m', path.join(os.tmpdir(), 'no-such-model'));
  t.is(missing.code, 1);
  t.regex(missing.stderr.trim(), /^latte-flow: E_BAD_CONFIG: .*no such model directory$/);
  const badImage = await cli('ask', path.join(root, 'package.json'), 'what?', '-m', tiny);
  t.is(badImage.code, 1);
  t.regex(badImage.stderr, /latte-flow: E_BAD_IMAGE/);
  for (const args of [['generate'], ['generate', 'a', '--steps', '0'], ['generate', 'a', '--guidance', 'x'], ['generate', 'a', '--guidance', '5/x'], ['generate', 'a', '--backend', 'tpu'], ['bogus'], ['ask', 'only-one-arg']]) {
    const r = await cli(...args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, /^error: /, args.join(' '));
  }
  for (const args of [['--help'], ['generate', '--help'], ['ask', '--help'], ['inspect', '--help']]) {
    const r = await cli(...args);
    t.is(r.code, 0, args.join(' '));
    t.regex(r.stdout, /Usage: latte-flow/);
  }
});

test('eval prints ShapesEval and VQA in template and held-out wording side by side (shipped model, tiny counts)', async (t) => {
  const r = await cli('eval', '--limit', '2', '--vqa', '2', '--blanks', '1', '--steps', '4', '--threads', '1');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /\| ShapesEval \| template \| held-out \| bare prompt \| target \|/);
  t.regex(r.stdout, /\| overall \| \d\.\d{3} \| \d\.\d{3} \| \d\.\d{3} \|/);
  t.regex(r.stdout, /\| VQA \(exact match\) \| template \| held-out \| target \|/);
  t.regex(r.stdout, /\| blank image \| \d\/6 \| \d\/6 \|/);
  t.regex(r.stdout, /ShapesEval: 2 \+ 2 \+ 2 prompts/);
});
