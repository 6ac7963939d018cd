// Decoding and preprocessing a 4000x3000 JPEG (seconds of CPU) leaves the event loop free: a 1 ms
// interval keeps firing and the loop's worst delay stays far below the time the work takes (on the
// main thread it was all of it). The bound is loose on purpose (shared machines stall for tens of
// ms on their own); benchmarks/event-loop.ts reports the real figures.
import test from 'ava';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { imageToPixels, smartResize, type PreprocessorConfig } from '../lib/image.ts';

const jpegjs = createRequire(import.meta.url)('jpeg-js') as { encode(img: { width: number; height: number; data: Uint8Array }, q: number): { data: Uint8Array } };
const cfg: PreprocessorConfig = JSON.parse(fs.readFileSync(new URL('../models/shapes/vlm/preprocessor_config.json', import.meta.url), 'utf8'));

test('the event loop keeps turning while a 4000x3000 JPEG is decoded and preprocessed', async (t) => {
  const [w, h] = [4000, 3000];
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < rgba.length; i++) rgba[i] = (((i >> 2) % w) ^ ((i >> 2) / w)) + (i & 3) * 40;
  const jpg = new Uint8Array(jpegjs.encode({ width: w, height: h, data: rgba }, 85).data);
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
  // 200 ms, or a tenth of the work on a machine so loaded that the work itself crawls
  t.true(maxMs < Math.max(200, ms / 10), `the event loop stalled for ${maxMs.toFixed(0)} ms of ${ms.toFixed(0)} ms`);
  t.true(ticks >= ms / 100, `only ${ticks} ticks of a 1 ms interval in ${ms.toFixed(0)} ms`);
});
