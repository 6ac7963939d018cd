/**
 * Event-loop delay while imageToPixels turns a 4000x3000 JPEG into the shipped model's pixel values
 * (models/shapes/vlm/preprocessor_config.json). The work runs in the image worker, so the loop's
 * max and p99 delay should stay small (issue 20's target: max < 20 ms). Round 1 includes starting
 * the worker; the idle row is the machine's noise floor; the answer rows time a whole request on the
 * shipped model. --baseline also times the same work on the main thread (what the loop used to suffer).
 *
 *   node --import=tsx benchmarks/event-loop.ts [--rounds 3] [--baseline]
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DEFAULT_IMAGE_LIMITS, imageToPixels, type PreprocessorConfig } from '../lib/image.ts';
import { runImageTask } from '../lib/image-task.ts';

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf('--rounds') + 1]) || 3;
const cfg: PreprocessorConfig = JSON.parse(fs.readFileSync(new URL('../models/shapes/vlm/preprocessor_config.json', import.meta.url), 'utf8'));
const jpegjs = createRequire(import.meta.url)('jpeg-js') as { encode(img: { width: number; height: number; data: Uint8Array }, q: number): { data: Uint8Array } };

const [W, H] = [4000, 3000];
const rgba = new Uint8Array(W * H * 4);
for (let i = 0; i < rgba.length; i++) rgba[i] = (((i >> 2) % W) ^ ((i >> 2) / W)) + (i & 3) * 40;
const jpg = new Uint8Array(jpegjs.encode({ width: W, height: H, data: rgba }, 85).data);
const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'latte-eventloop-')), 'photo.jpg');
fs.writeFileSync(file, jpg);

async function measure(label: string, work: () => Promise<unknown>): Promise<void> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, 5)); // the histogram counts from its first tick
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 5)); // so a tick held back by blocking work is recorded
  h.disable();
  const f = (ns: number): string => (ns / 1e6).toFixed(1).padStart(7);
  console.log(`${label.padEnd(28)} ${ms.toFixed(0).padStart(6)} ms   delay max ${f(h.max)} ms   p99 ${f(h.percentile(99))} ms   mean ${f(h.mean)} ms`);
}

console.log(`${W}x${H} JPEG, ${(jpg.length / 1e6).toFixed(2)} MB; limits ${JSON.stringify(DEFAULT_IMAGE_LIMITS)}; ${os.cpus().length} CPUs, node ${process.version}`);
await measure('idle (noise floor)', () => new Promise((r) => setTimeout(r, 2000)));
for (let r = 1; r <= rounds; r++) {
  await measure(`round ${r}, bytes${r === 1 ? ' (+ start)' : ''}`, () => imageToPixels(jpg, cfg));
  await measure(`round ${r}, path`, () => imageToPixels(file, cfg));
}
// the whole request: the shipped model answers a question about the photo (decode in the worker,
// prefill and decode on the engine's stream); the loop only tokenizes and hands work over
const { LatteFlow } = await import('../lib/index.ts');
const lf = await LatteFlow.load(fileURLToPath(new URL('../models/shapes', import.meta.url)), { threads: 1 });
for (let r = 1; r <= rounds; r++) await measure(`round ${r}, answer (shipped)`, () => lf.answer({ image: file, question: 'what colour is the circle?', maxTokens: 8 }));
await lf.dispose();
if (args.includes('--baseline')) {
  const bytes = jpg.slice();
  await measure('main thread (baseline)', async () => runImageTask({ op: 'pixels', bytes, cfg, limits: { ...DEFAULT_IMAGE_LIMITS } }));
}
fs.rmSync(path.dirname(file), { recursive: true, force: true });
