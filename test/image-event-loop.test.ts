// Decoding and preprocessing a 4000x3000 JPEG (seconds of CPU) leaves the event loop free: a 1 ms
// interval keeps firing and the loop's worst delay stays far below the time the work takes (on the
// main thread it was all of it). The bound is loose on purpose (shared machines stall for tens of
// ms on their own); benchmarks/event-loop.ts reports the real figures. The test JPEG is encoded in a
// throwaway worker: encoding it here left hundreds of MB of garbage whose collection, on a loaded CI
// machine, paused this thread for a second in the middle of the measurement.
import test from 'ava';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { imageToPixels, smartResize, type PreprocessorConfig } from '../lib/image.ts';

const JPEG_JS = createRequire(import.meta.url).resolve('jpeg-js');

/** A w x h test-pattern JPEG, made in a worker whose heap (and garbage) goes when it exits. */
function testJpeg(w: number, h: number): Promise<Uint8Array> {
  const source = `
    const { parentPort, workerData: { w, h, jpegJs } } = require('node:worker_threads');
    const rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = (((i >> 2) % w) ^ ((i >> 2) / w)) + (i & 3) * 40;
    const jpg = new Uint8Array(require(jpegJs).encode({ width: w, height: h, data: rgba }, 85).data);
    parentPort.postMessage(jpg, [jpg.buffer]);`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { w, h, jpegJs: JPEG_JS } });
    worker.once('message', (jpg: Uint8Array) => {
      resolve(jpg);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}
const cfg: PreprocessorConfig = JSON.parse(fs.readFileSync(new URL('../models/shapes/vlm/preprocessor_config.json', import.meta.url), 'utf8'));

test('the event loop keeps turning while a 4000x3000 JPEG is decoded and preprocessed', async (t) => {
  const [w, h] = [4000, 3000];
  const jpg = await testJpeg(w, h);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const tick = (): Promise<unknown> => new Promise((r) => setTimeout(r, 5));
  delay.enable();
  await tick(); // the histogram counts from its first sample
  const t0 = performance.now();
  const pv = await imageToPixels(jpg, cfg);
  const ms = performance.now() - t0;
  await tick(); // records a stall that lasted to the end
  delay.disable();
  clearInterval(timer);
  const maxMs = delay.max / 1e6;
  t.log(`${ms.toFixed(0)} ms of work; event loop delay max ${maxMs.toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms; ${ticks} ticks, ${delay.count} samples`);
  t.deepEqual(pv.source, [w, h]);
  const [rh, rw] = smartResize(h, w, cfg.patch_size * cfg.merge_size, cfg.min_pixels, cfg.max_pixels);
  t.deepEqual(pv.grid, [1, rh / cfg.patch_size, rw / cfg.patch_size]);
  t.true(ms > 300, 'the work is long enough for the check to mean something');
  // On the main thread the decode and resize would be one stall of nearly all of `ms`; a fifth of it
  // (or 250 ms) leaves room for a loaded machine's own pauses and still catches that.
  t.true(maxMs < Math.max(250, ms / 5), `the event loop stalled for ${maxMs.toFixed(0)} ms of ${ms.toFixed(0)} ms`);
  t.true(ticks >= ms / 100, `only ${ticks} ticks of a 1 ms interval in ${ms.toFixed(0)} ms`);
});
