// The addon in worker threads: each environment gets its own addon data and engines. Plain JS on
// the built package (dist/): tsx does not apply inside worker threads.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Engine } from '../../dist/index.js';

async function work(k) {
  const e = new Engine({ backend: 'cpu', threads: 1 });
  try {
    const v = await e.add(e.tensor([k, k], [2]), e.tensor([1, 1], [2])).readFloat32();
    return v[0] + v[1];
  } finally {
    await e.dispose();
  }
}

if (isMainThread) {
  const run = (k) =>
    new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: k });
      w.once('message', resolve);
      w.once('error', reject);
    });
  const results = await Promise.all([run(1), run(2), work(3)]);
  console.log(`ok ${results.join(',')}`);
} else {
  parentPort.postMessage(await work(workerData));
}
