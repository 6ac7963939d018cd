// Worker threads terminated in the middle of generateImage and answer: the host process must live.
// Each round starts a worker that loops over requests on the model, then terminates it at a
// varying moment (while reads and fences are owed to it). Plain JS on dist/ (tsx does not apply
// inside worker threads). Prints `ok N` after N rounds; a crash kills the process instead.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { LatteFlow } from '../../dist/index.js';

if (isMainThread) {
  const [model, roundsArg] = process.argv.slice(2);
  const rounds = Number(roundsArg ?? 12);
  for (let i = 0; i < rounds; i++) {
    const w = new Worker(new URL(import.meta.url), { workerData: { model, kind: i % 2 ? 'answer' : 'generate' } });
    w.on('error', (e) => {
      console.log(`not ok - worker error: ${e.message}`);
      process.exit(1);
    });
    await new Promise((resolve) => w.once('message', resolve)); // loaded, first request started
    await new Promise((resolve) => setTimeout(resolve, 1 + ((i * 7) % 23)));
    await w.terminate();
  }
  console.log(`ok ${rounds}`);
} else {
  const lf = await LatteFlow.load(workerData.model, { backend: 'cpu', threads: 1 });
  let first = true;
  for (;;) {
    const req = workerData.kind === 'answer'
      ? lf.answer({ image: { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(200) }, question: 'what shape is it?', maxTokens: 16 })
      : lf.generateImage({ prompt: 'a red circle', steps: 12 });
    if (first) parentPort.postMessage('started');
    first = false;
    await req;
  }
}
