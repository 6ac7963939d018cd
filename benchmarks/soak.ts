/**
 * Soak: many mixed requests on one loaded shipped model, some of them bad on purpose, `--concurrency`
 * at a time. Reports every 100 requests the process RSS, the engine's bytes in use, the outcomes by
 * code, and the event-loop delay over the whole run. Memory must stay flat and every failure must be
 * a coded LatteError (the run exits 1 otherwise).
 *
 *   node --import=tsx benchmarks/soak.ts [--requests 600] [--concurrency 4] [--threads 2]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { LatteError, LatteFlow } from '../lib/index.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const requests = arg('requests', 600);
const concurrency = arg('concurrency', 4);
const lf = await LatteFlow.load(fileURLToPath(new URL('../models/shapes', import.meta.url)), { threads: arg('threads', 2) });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-soak-'));
const photo = path.join(dir, 'photo.jpg');
const rgba = new Uint8Array(640 * 480 * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 31) % 251));
fs.writeFileSync(photo, jpeg.encode({ width: 640, height: 480, data: rgba }, 80).data);
const scene = (await lf.generateImage({ prompt: 'a red circle to the left of a blue square' }))[0];
const scenePng = encodePng({ width: scene.width, height: scene.height, data: scene.data, channels: 3, depth: 8 });

// one kind of request per index: good ones, and inputs a service sees from careless or hostile callers
const kinds: [string, (i: number) => Promise<unknown>][] = [
  ['generate', (i) => lf.generateImage({ prompt: 'a green triangle above a yellow square', seed: i })],
  ['answer png', () => lf.answer({ image: scenePng, question: 'what colour is the circle?' })],
  ['answer photo', () => lf.answer({ image: photo, question: 'how many shapes are there?', maxTokens: 8 })],
  ['stream', async () => {
    let s = '';
    for await (const piece of lf.answerStream({ image: scene, question: 'where is the square?' })) s += piece;
    return s;
  }],
  ['bad image', () => lf.answer({ image: Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 1, 2, 3), question: 'what?' })],
  ['too long', () => lf.generateImage({ prompt: 'a red circle '.repeat(400) })],
  ['aborted', (i) => lf.generateImage({ prompt: 'a blue circle', seed: i, signal: AbortSignal.timeout(5) })],
  ['throwing onProgress', () => lf.generateImage({ prompt: 'a blue circle', onProgress: (p) => { if (p.step === 3) throw new Error('caller bug'); } })],
];

const outcomes = new Map<string, number>();
let uncoded = 0;
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
const t0 = performance.now();
console.log(`${requests} requests, ${concurrency} at a time, ${lf.engine.backend.threads} engine threads, ${os.cpus().length} CPUs, node ${process.version}`);
console.log('done | rss MiB | engine MiB | seconds | outcomes');
let next = 0;
let done = 0;
async function worker(): Promise<void> {
  while (next < requests) {
    const i = next++;
    const [name, run] = kinds[i % kinds.length];
    let key: string;
    try {
      await run(i);
      key = `${name}: ok`;
    } catch (e) {
      if (e instanceof LatteError) key = `${name}: ${e.code}`;
      else if (name === 'throwing onProgress' && (e as Error).message === 'caller bug') key = `${name}: its error`;
      else {
        key = `${name}: UNCODED ${(e as Error)?.message}`;
        uncoded++;
      }
    }
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    if (++done % 100 === 0 || done === requests) {
      const rss = process.memoryUsage().rss / 2 ** 20;
      const engine = lf.engine.stats().bytesInUse / 2 ** 20;
      console.log(`${String(done).padStart(4)} | ${rss.toFixed(0).padStart(7)} | ${engine.toFixed(1).padStart(10)} | ${((performance.now() - t0) / 1e3).toFixed(1).padStart(7)} |`);
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
loop.disable();
console.log(`event loop delay over the run: max ${(loop.max / 1e6).toFixed(1)} ms, p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, mean ${(loop.mean / 1e6).toFixed(2)} ms`);
for (const [k, n] of [...outcomes].sort()) console.log(`  ${k}: ${n}`);
await lf.dispose();
fs.rmSync(dir, { recursive: true, force: true });
if (uncoded) {
  console.log(`${uncoded} failures were not coded LatteErrors`);
  process.exitCode = 1;
}
