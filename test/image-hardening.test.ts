// Untrusted image input: size limits read from the header before decoding, safe file reads, strict
// RGB objects, and the image worker (its results equal preprocessImage's; it survives crashes, does
// not keep a process alive, and starts from compiled JavaScript as well as from the .ts sources).
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { encode as encodePng } from 'fast-png';
import { LatteError } from '../lib/errors.ts';
import { DEFAULT_IMAGE_LIMITS, decodeImage, imageToPixels, preprocessImage, type PreprocessorConfig, type RgbImage } from '../lib/image.ts';
import { imageWorkerState } from '../lib/image-worker.ts';
import { PNG_SIGNATURE, pngChunk } from './helpers/png.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jpegjs = createRequire(import.meta.url)('jpeg-js') as { encode(img: { width: number; height: number; data: Uint8Array }, q: number): { data: Uint8Array } };
const shipped: PreprocessorConfig = JSON.parse(fs.readFileSync(path.join(root, 'models/shapes/vlm/preprocessor_config.json'), 'utf8'));
const qwen: PreprocessorConfig = { ...shipped, min_pixels: 56 * 56, max_pixels: 28 * 28 * 1280, patch_size: 14 };

function rgbNoise(w: number, h: number, seed = 1): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length: w * h * 3 }, () => (x = (x * 1103515245 + 12345) >>> 0) >>> 24);
}

function jpeg(w: number, h: number): Uint8Array {
  const rgba = new Uint8Array(w * h * 4).map((_, i) => (i % 4 === 3 ? 255 : ((i >> 2) * (i % 4 + 1)) % 251));
  return new Uint8Array(jpegjs.encode({ width: w, height: h, data: rgba }, 90).data);
}

/** A JPEG whose frame header declares w x h, after a comment that holds a fake 16x16 frame header. */
function declaring(j: Uint8Array, w: number, h: number): Uint8Array {
  const b = Buffer.from(j);
  let p = 2;
  while (b[p + 1] !== 0xc0) p += 2 + b.readUInt16BE(p + 2);
  b.writeUInt16BE(h, p + 5);
  b.writeUInt16BE(w, p + 7);
  const fake = [0xff, 0xc0, 0, 17, 8, 0, 16, 0, 16, 3, 1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1];
  return Buffer.concat([b.subarray(0, 2), Buffer.from([0xff, 0xfe, 0, fake.length + 2, ...fake]), b.subarray(2)]);
}

/** A decodable all-black grey PNG of any size, cheap to make. */
function blackPng(w: number, h: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(h * (w + 1)))), pngChunk('IEND', Buffer.alloc(0))]);
}

function tempDir(t: { teardown(f: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-image-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Fails instead of hanging (the old code waited forever on a FIFO). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

async function badImage(t: import('ava').ExecutionContext, p: Promise<unknown>, message: RegExp, what = ''): Promise<void> {
  const e = await t.throwsAsync(within(p, 20_000), { instanceOf: LatteError, message }, what);
  t.is(e?.code, 'E_BAD_IMAGE', what);
}

test('defaults: 36 megapixels, 64 MiB; bad limits are E_ARG', async (t) => {
  t.deepEqual({ ...DEFAULT_IMAGE_LIMITS }, { maxPixels: 36_000_000, maxBytes: 64 * 1024 * 1024 });
  const j = jpeg(16, 16);
  for (const limits of [{ maxPixels: 0 }, { maxBytes: -1 }, { maxPixels: 1.5 }, { maxBytes: Number.NaN }, 'big'])
    t.is((await t.throwsAsync(decodeImage(j, limits as never), { instanceOf: LatteError }))?.code, 'E_ARG', JSON.stringify(limits));
});

test('a JPEG declaring too many pixels is refused from its header, without decoding', async (t) => {
  const small = jpeg(16, 16);
  // the frame header is found by walking segments, not by scanning for its bytes (the comment holds a fake one)
  await badImage(t, decodeImage(declaring(small, 8000, 8000)), /8000x8000 \(64000000 pixels\), above the limit of 36000000 pixels/);
  await badImage(t, imageToPixels(declaring(small, 10000, 10000), shipped), /10000x10000 \(100000000 pixels\)/);
  await badImage(t, decodeImage(declaring(small, 6001, 6000)), /6001x6000/);
  await badImage(t, decodeImage(small, { maxPixels: 255 }), /16x16 \(256 pixels\), above the limit of 255/);
  t.is((await decodeImage(small, { maxPixels: 256 })).width, 16);
  await badImage(t, decodeImage(small, { maxBytes: 100 }), new RegExp(`has ${small.length} bytes, above the limit of 100 bytes`));
  await badImage(t, decodeImage(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46)), /ends before its frame header/);
});

test('a small JPEG declaring a large frame within the pixel limit is refused before jpeg-js allocates it', async (t) => {
  // found by the fuzz suite: 16384x1700 from a file of a few hundred bytes took 4 s and 800 MB to refuse
  const t0 = performance.now();
  await badImage(t, decodeImage(declaring(jpeg(16, 16), 16384, 1700)), /declares 16384x1700 but holds only \d+ bytes/);
  t.log(`refused in ${(performance.now() - t0).toFixed(0)} ms`);
  // a real JPEG that compresses extremely well (flat grey, 2000x2000) still decodes
  const flat = new Uint8Array(jpegjs.encode({ width: 2000, height: 2000, data: new Uint8Array(2000 * 2000 * 4).fill(128) }, 50).data);
  t.true(flat.length * 1024 >= 2000 * 2000, `the flat JPEG has ${flat.length} bytes`);
  t.is((await decodeImage(flat)).width, 2000);
});

test('a PNG declaring too many pixels is refused before inflating; 6000x6000 passes', async (t) => {
  await badImage(t, decodeImage(blackPng(7000, 7000)), /7000x7000 \(49000000 pixels\), above the limit of 36000000/);
  await badImage(t, imageToPixels(blackPng(100, 100), shipped, { maxPixels: 9999 }), /100x100/);
  const big = await decodeImage(blackPng(6000, 6000));
  t.deepEqual([big.width, big.height, big.data.length], [6000, 6000, 6000 * 6000 * 3]);
});

test('paths: directories, FIFOs and files over maxBytes are refused before reading', async (t) => {
  const dir = tempDir(t);
  await badImage(t, decodeImage(dir), /not a regular file \(a directory\)/);
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  await badImage(t, imageToPixels(fifo, shipped), /not a regular file \(a FIFO\)/);
  const file = path.join(dir, 'big.jpg');
  const j = jpeg(64, 48);
  fs.writeFileSync(file, j);
  await badImage(t, decodeImage(file, { maxBytes: j.length - 1 }), new RegExp(`${j.length} bytes, above the limit of ${j.length - 1}`));
  fs.symlinkSync(file, path.join(dir, 'link.jpg'));
  t.deepEqual((await imageToPixels(path.join(dir, 'link.jpg'), shipped)).source, [64, 48]);
  await badImage(t, decodeImage(path.join(dir, 'missing.png')), /cannot read image/);
  await badImage(t, decodeImage(''), /cannot read image/);
});

test('paths: /dev/zero is refused at once', async (t) => {
  await badImage(t, decodeImage('/dev/zero'), /not a regular file \(a device\)/);
  await badImage(t, imageToPixels('/dev/zero', shipped), /not a regular file/);
});

test('RGB objects: anything but 8-bit bytes of the exact size is E_BAD_IMAGE', async (t) => {
  const [w, h] = [4, 3];
  const n = w * h * 3;
  const bad: [string, unknown][] = [
    ['Float32Array', { width: w, height: h, data: new Float32Array(n).fill(0.5) }],
    ['Uint16Array', { width: w, height: h, data: new Uint16Array(n).fill(300) }],
    ['Int8Array', { width: w, height: h, data: new Int8Array(n) }],
    ['plain array', { width: w, height: h, data: Array(n).fill(7) }],
    ['string', { width: w, height: h, data: 'x'.repeat(n) }],
    ['ArrayBuffer', { width: w, height: h, data: new ArrayBuffer(n) }],
    ['DataView', { width: w, height: h, data: new DataView(new ArrayBuffer(n)) }],
    ['no data', { width: w, height: h }],
    ['fractional width', { width: 2.5, height: 2, data: new Uint8Array(15) }],
    ['negative size', { width: -4, height: -3, data: new Uint8Array(n) }],
    ['NaN width', { width: Number.NaN, height: h, data: new Uint8Array(n) }],
    ['string width', { width: '4', height: h, data: new Uint8Array(n) }],
    ['zero size', { width: 0, height: 0, data: new Uint8Array(0) }],
    ['huge size', { width: 1e9, height: 1e9, data: new Uint8Array(n) }],
    ['short data', { width: w, height: h, data: new Uint8Array(n - 1) }],
    ['two channels', { width: w, height: h, data: new Uint8Array(w * h * 2) }],
  ];
  for (const [what, img] of bad) {
    const e = t.throws(() => preprocessImage(img as RgbImage, shipped), { instanceOf: LatteError }, what);
    t.is(e?.code, 'E_BAD_IMAGE', what);
    await badImage(t, imageToPixels(img as RgbImage, shipped), /./, what);
  }
  await badImage(t, imageToPixels({ width: 100, height: 100, data: new Uint8Array(30000) }, shipped, { maxPixels: 9999 }), /100x100 \(10000 pixels\)/);
  for (const x of [42, null, undefined, {}, [], new Uint16Array(4)]) await badImage(t, imageToPixels(x as never, shipped), /image must be|RGB image|bad image size/, String(x));
  // accepted: Uint8Array, Buffer, Uint8ClampedArray (RGBA); the same pixels give the same values
  const rgb = rgbNoise(w, h);
  const want = Array.from(preprocessImage({ width: w, height: h, data: rgb }, shipped).data);
  const rgba = new Uint8ClampedArray(w * h * 4).map((_, i) => (i % 4 === 3 ? 1 : rgb[(i >> 2) * 3 + (i % 4)]));
  for (const data of [Buffer.from(rgb), rgba]) {
    t.deepEqual(Array.from(preprocessImage({ width: w, height: h, data }, shipped).data), want);
    t.deepEqual(Array.from((await imageToPixels({ width: w, height: h, data }, shipped)).data), want);
  }
});

test('imageToPixels equals preprocessImage of the decoded image, leaves the caller its buffers and reports the source size', async (t) => {
  const [w, h] = [61, 47];
  const rgb = rgbNoise(w, h, 3);
  const dir = tempDir(t);
  const pngBytes = encodePng({ width: w, height: h, data: rgb, channels: 3, depth: 8 });
  const jpgBytes = jpeg(w, h);
  fs.writeFileSync(path.join(dir, 'a.png'), pngBytes);
  for (const cfg of [shipped, qwen]) {
    for (const input of [pngBytes, jpgBytes, path.join(dir, 'a.png')]) {
      const want = preprocessImage(await decodeImage(input), cfg);
      const got = await imageToPixels(input, cfg);
      t.deepEqual([got.shape, got.grid, got.source], [want.shape, want.grid, [w, h]]);
      t.true(Buffer.from(got.data.buffer).equals(Buffer.from(want.data.buffer)));
    }
    const img = { width: w, height: h, data: rgb };
    const got = await imageToPixels(img, cfg);
    t.true(Buffer.from(got.data.buffer).equals(Buffer.from(preprocessImage(img, cfg).data.buffer)));
  }
  t.is(rgb.length, w * h * 3); // not detached by the transfer to the worker
  t.is(pngBytes.length > 0 && jpgBytes.byteLength > 0, true);
  t.is(imageWorkerState().inlineReason, undefined);
});

test.serial('a dead image worker rejects its tasks with E_BAD_IMAGE and the next task starts a new one', async (t) => {
  const small = jpeg(32, 32);
  await decodeImage(small);
  const first = imageWorkerState().worker;
  t.truthy(first);
  const pending = imageToPixels(jpeg(1200, 900), shipped);
  await new Promise((r) => setTimeout(r, 20));
  await first!.terminate();
  await badImage(t, pending, /image worker stopped/);
  t.is((await decodeImage(small)).width, 32);
  const second = imageWorkerState().worker;
  t.truthy(second);
  t.not(second!.threadId, first!.threadId);
});

test('the idle worker does not keep a process alive, a pending task does', (t) => {
  const code = "import { decodeImage } from './lib/image.ts'; const img = await decodeImage(new Uint8Array(JSON.parse(process.argv[1]))); console.log('decoded', img.width);";
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', code, JSON.stringify(Array.from(jpeg(24, 16)))], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  const ms = performance.now() - t0;
  t.is(r.error, undefined, 'the process did not exit by itself');
  // a worker kept alive would hold the process for at least its 10 s idle retirement after the decode
  t.true(ms < 10_000, `the process took ${ms.toFixed(0)} ms to exit`);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), 'decoded 24');
  t.notRegex(r.stderr, /main thread/); // no inline fallback
});

test('compiled to JavaScript (as in dist/), the worker starts without tsx', (t) => {
  const dir = tempDir(t);
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}');
  const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
  const flags = ['--outDir', path.join(dir, 'lib'), '--rootDir', path.join(root, 'lib'), '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--types', 'node', '--strict', '--skipLibCheck'];
  execFileSync(process.execPath, [tsc, ...flags, path.join(root, 'lib/image.ts'), path.join(root, 'lib/image-task.ts')], { cwd: root, stdio: 'pipe' });
  const script = `import { imageToPixels } from './lib/image.js'; import { imageWorkerState } from './lib/image-worker.js';
    const cfg = JSON.parse(process.argv[2]); const pv = await imageToPixels(new Uint8Array(JSON.parse(process.argv[3])), cfg);
    console.log(JSON.stringify({ source: pv.source, grid: pv.grid, inline: imageWorkerState().inlineReason ?? null }));`;
  fs.writeFileSync(path.join(dir, 'run.js'), script);
  const r = spawnSync(process.execPath, ['run.js', JSON.stringify(shipped), JSON.stringify(Array.from(jpeg(40, 30)))], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), { source: [40, 30], grid: [1, 8, 10], inline: null });
});
