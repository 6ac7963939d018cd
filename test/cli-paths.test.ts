// The CLI as a new user meets it: paths checked before the model loads, the format the extension
// names, a note when a file is replaced, --version, and coded errors (never E_INTERNAL) for mistakes.
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode as decodePng, encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';

const root = fileURLToPath(new URL('..', import.meta.url));
const tiny = path.join(root, 'test/fixtures/tiny-model');
const noModel = path.join(os.tmpdir(), 'no-such-latte-model');

// resolved here: the runs below start in other folders, where a bare --import=tsx finds nothing
const tsx = `--import=${import.meta.resolve('tsx')}`;

function cli(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [tsx, path.join(root, 'lib/cli.ts'), ...args], { cwd, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}
function tmp(t: { teardown(f: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('generate -o: a missing or unusable place, or an unknown extension, is E_ARG before the model loads', async (t) => {
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'file.png'), '');
  fs.mkdirSync(path.join(dir, 'folder.png'));
  const bad: [string, RegExp][] = [
    ['missing-folder/x.png', /no such folder/],
    ['file.png/x.png', /not a folder/],
    ['folder.png', /is a folder/],
    ['x.gif', /must end in \.png, \.jpg or \.jpeg/],
    ['x', /must end in \.png, \.jpg or \.jpeg/],
  ];
  for (const [out, why] of bad) {
    // the model does not exist either: the path must be the error, found first
    const r = await cli(dir, 'generate', 'a circle', '-m', noModel, '-o', out);
    t.is(r.code, 1, out);
    t.regex(r.stderr.trim(), /^latte-flow: E_ARG: -o /, out);
    t.regex(r.stderr, why, out);
  }
  if (process.getuid?.() !== 0) {
    const ro = path.join(dir, 'read-only');
    fs.mkdirSync(ro, { mode: 0o555 });
    const r = await cli(dir, 'generate', 'a circle', '-m', noModel, '-o', 'read-only/x.png');
    t.regex(r.stderr, /E_ARG: .*cannot write/);
  }
});

test('generate writes JPEG for .jpg/.jpeg and PNG for .png, and says when it replaced a file', async (t) => {
  const dir = tmp(t);
  const r = await cli(dir, 'generate', 'a red circle', '-m', tiny, '-o', 'pic.jpg', '--count', '2', '--steps', '2');
  t.is(r.code, 0, r.stderr);
  for (const f of ['pic-1.jpg', 'pic-2.jpg']) {
    const img = jpeg.decode(fs.readFileSync(path.join(dir, f)));
    t.deepEqual([img.width, img.height], [16, 16], f);
  }
  t.notRegex(r.stderr, /replaced/);
  const again = await cli(dir, 'generate', 'a red circle', '-m', tiny, '--steps', '2', '-o', 'x.JPEG');
  t.is(again.code, 0, again.stderr);
  t.deepEqual([...fs.readFileSync(path.join(dir, 'x.JPEG')).subarray(0, 2)], [0xff, 0xd8]);
  fs.writeFileSync(path.join(dir, 'out.png'), 'an older image');
  const dflt = await cli(dir, 'generate', 'a red circle', '-m', tiny, '--steps', '2');
  t.is(dflt.code, 0, dflt.stderr);
  t.regex(dflt.stderr, /replaced the existing file out\.png/);
  t.is(decodePng(fs.readFileSync(path.join(dir, 'out.png'))).width, 16);
});

test('--version prints the package version', async (t) => {
  const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  for (const flag of ['--version', '-V']) {
    const r = await cli(root, flag);
    t.is(r.code, 0, flag);
    t.is(r.stdout.trim(), version, flag);
  }
});

test('user mistakes are coded errors: an unreadable ask image (before the model loads), too many threads', async (t) => {
  const dir = tmp(t);
  for (const image of [path.join(dir, 'missing.png'), dir]) {
    const r = await cli(dir, 'ask', image, 'what?', '-m', noModel);
    t.is(r.code, 1, image);
    t.regex(r.stderr.trim(), /^latte-flow: E_BAD_IMAGE: cannot read image /, image);
  }
  const cores = os.availableParallelism();
  const r = await cli(dir, 'generate', 'a circle', '-m', tiny, '--threads', String(cores + 1));
  t.is(r.code, 1);
  t.regex(r.stderr.trim(), new RegExp(`^latte-flow: E_ARG: threads .*this machine has ${cores} cores`));
});

test('ask warns on stderr when the image is far from the model\'s pictures (world.json), and not otherwise', async (t) => {
  const dir = tmp(t);
  const shipped = path.join(root, 'models/shapes');
  // a 640x480 "photo": the shipped model saw 64x64 scenes of six colours on white
  const photo = new Uint8Array(640 * 480 * 3).map((_, i) => (i * 37) % 251);
  fs.writeFileSync(path.join(dir, 'photo.png'), encodePng({ width: 640, height: 480, data: photo, channels: 3, depth: 8 }));
  const big = await cli(dir, 'ask', 'photo.png', 'what colour is the circle?', '-m', shipped, '--max-tokens', '4');
  t.is(big.code, 0, big.stderr);
  t.regex(big.stderr, /warning: the image is 640x480 \(\d+x\d+ once resized\); the model only saw 64x64 pictures/);
  t.regex(big.stderr, /warning: \d+% of the image is in colours the model never saw/);
  fs.writeFileSync(path.join(dir, 'small.png'), encodePng({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(255), channels: 3, depth: 8 }));
  const small = await cli(dir, 'ask', 'small.png', 'what colour is the circle?', '-m', shipped, '--max-tokens', '4');
  t.is(small.code, 0, small.stderr);
  t.notRegex(small.stderr, /warning:|note:/);
});

test('ask, for a model without world.json, notes on stderr when the image is far larger than it sees', async (t) => {
  const dir = tmp(t);
  const tiny = path.join(root, 'test/fixtures/tiny-model');
  const photo = new Uint8Array(1024 * 1024 * 3).map((_, i) => (i * 37) % 251);
  fs.writeFileSync(path.join(dir, 'photo.png'), encodePng({ width: 1024, height: 1024, data: photo, channels: 3, depth: 8 }));
  const big = await cli(dir, 'ask', 'photo.png', 'what is it?', '-m', tiny, '--max-tokens', '2');
  t.is(big.code, 0, big.stderr);
  t.regex(big.stderr, /note: the image is 1024x1024; the model sees it resized to \d+x\d+/);
  t.notRegex(big.stderr, /warning:/);
});
