// Image preprocessing against the reference fixture (which matches Pillow and HF's processor bit
// for bit: tools/reference/HF_PARITY.md).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../lib/index.ts';
import { encode as encodePng } from 'fast-png';
import { createRequire } from 'node:module';
import { LatteError } from '../lib/index.ts';
import { decodeImage, patchOrder, preprocessImage, resizeBicubic, smartResize } from '../lib/image.ts';
import { cpuEngine } from './helpers/engine.ts';

const fixture = fileURLToPath(new URL('./fixtures/vlm_preprocess.safetensors', import.meta.url));

test('bicubic resize, normalisation and patch order equal the reference', async (t) => {
  const ck = openCheckpoint(fixture);
  const cfg = JSON.parse(ck.metadata().config);
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const img = Uint8Array.from((await e.load(ck, 'in.image').read()) as Int32Array);
  const [H, W] = ck.info('in.image').shape;
  const [h, w] = ck.info('out.resized').shape;
  t.deepEqual(smartResize(H, W, cfg.patch_size * cfg.merge_size, cfg.min_pixels, cfg.max_pixels), [h, w]);
  const resized = resizeBicubic(img, H, W, 3, h, w);
  t.deepEqual(Array.from(resized), Array.from((await e.load(ck, 'out.resized').read()) as Int32Array));
  const pv = preprocessImage({ width: W, height: H, data: img }, cfg);
  t.deepEqual(pv.grid, Array.from((await e.load(ck, 'out.grid_thw').read()) as Int32Array));
  t.deepEqual(pv.shape, ck.info('out.pixel_values').shape);
  t.deepEqual(Array.from(pv.data), Array.from(await e.load(ck, 'out.pixel_values').readFloat32()));
  // RGBA input: alpha is dropped
  const rgba = new Uint8Array(H * W * 4).map((_, i) => (i % 4 === 3 ? 77 : img[Math.floor(i / 4) * 3 + (i % 4)]));
  t.deepEqual(Array.from(preprocessImage({ width: W, height: H, data: rgba }, cfg).data), Array.from(pv.data));
});

test("patch order: merge windows contiguous, row-major over windows and within them (HF's processor order)", (t) => {
  const at = patchOrder(4, 6, 2);
  const n = 24;
  const cells = Array.from({ length: n }, (_, r) => `${at[r]},${at[n + r]}`);
  t.deepEqual(cells.slice(0, 8), ['0,0', '0,1', '1,0', '1,1', '0,2', '0,3', '1,2', '1,3']);
  t.deepEqual(cells.slice(12, 16), ['2,0', '2,1', '3,0', '3,1']);
  t.is(new Set(cells).size, n, 'every patch once');
  for (let w = 0; w < n / 4; w++) {
    const rows = new Set(Array.from({ length: 4 }, (_, k) => Math.floor(at[4 * w + k] / 2)));
    const cols = new Set(Array.from({ length: 4 }, (_, k) => Math.floor(at[n + 4 * w + k] / 2)));
    t.true(rows.size === 1 && cols.size === 1, `window ${w}: its four rows are one merge window`);
  }
});

test('smart resize keeps area limits and rejects extreme aspect ratios', (t) => {
  t.deepEqual(smartResize(10, 10, 28, 56 * 56, 28 * 28 * 1280), [56, 56]); // grown to min_pixels
  const [h, w] = smartResize(4000, 3000, 28, 56 * 56, 28 * 28 * 1280);
  t.true(h * w <= 28 * 28 * 1280 && h % 28 === 0 && w % 28 === 0);
  t.deepEqual(smartResize(42, 70, 28, 0, 1e9), [56, 56]); // 1.5 and 2.5 round to even: 2, 2
  t.throws(() => smartResize(1, 500, 28, 0, 1e9), { message: /aspect ratio/ });
  t.throws(() => preprocessImage({ width: 2, height: 2, data: new Uint8Array(5) }, {} as never), { message: /not RGB/ });
});

test('PNG (RGB, RGBA, grey, 16-bit) and JPEG decode to RGB; bad input is E_BAD_IMAGE', async (t) => {
  const [w, h] = [5, 3];
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
  const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i % 4 === 3 ? 9 : rgb[Math.floor(i / 4) * 3 + (i % 4)]));
  for (const [data, channels] of [[rgb, 3], [rgba, 4]] as const) {
    const img = await decodeImage(encodePng({ width: w, height: h, data, channels, depth: 8 }));
    t.deepEqual([img.width, img.height], [w, h]);
    t.deepEqual(Array.from(img.data), Array.from(rgb));
  }
  const grey = await decodeImage(encodePng({ width: 2, height: 1, data: Uint8Array.from([10, 200]), channels: 1, depth: 8 }));
  t.deepEqual(Array.from(grey.data), [10, 10, 10, 200, 200, 200]);
  const deep = await decodeImage(encodePng({ width: 1, height: 1, data: Uint16Array.from([0x1234, 0xff00, 0x0001]), channels: 3, depth: 16 }));
  t.deepEqual(Array.from(deep.data), [0x12, 0xff, 0x00]);
  const jpegjs = createRequire(import.meta.url)('jpeg-js');
  const flat = new Uint8Array(16 * 16 * 4).fill(200);
  const jpg = await decodeImage(new Uint8Array(jpegjs.encode({ width: 16, height: 16, data: flat }, 95).data));
  t.deepEqual([jpg.width, jpg.height, jpg.data.length], [16, 16, 16 * 16 * 3]);
  t.true(jpg.data.every((v) => Math.abs(v - 200) <= 2));
  const code = async (x: string | Uint8Array) => (await t.throwsAsync(() => decodeImage(x), { instanceOf: LatteError }))?.code;
  t.is(await code(new Uint8Array([1, 2, 3])), 'E_BAD_IMAGE');
  t.is(await code(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0])), 'E_BAD_IMAGE'); // truncated PNG
  t.is(await code(new Uint8Array([0xff, 0xd8, 0xff, 0x00])), 'E_BAD_IMAGE'); // truncated JPEG
  t.is(await code('/nonexistent/picture.png'), 'E_BAD_IMAGE');
});
