/**
 * Scale-out over BullMQ on Redis: workers (createWorker) run jobs on their local model; the API side
 * (createQueueClient) enqueues and waits, and is a ServedModel, so lib/serve serves it as it serves a
 * local model (`latte-flow serve --redis`). Loaded on first use: importing latte-flow loads no BullMQ.
 */
import { LatteError } from '../errors.js';
import type { QueueClient, QueueClientOptions } from './client.js';
import type { QueueWorker, QueueWorkerOptions } from './worker.js';

export type { QueueClient, QueueClientOptions } from './client.js';
export type { QueueWorker, QueueWorkerOptions } from './worker.js';

/**
 * BullMQ and ioredis are optional peer dependencies (scale-out is opt-in, and BullMQ brings an
 * install script): a missing one is named with the command that adds it.
 */
async function load<T>(importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /'(bullmq|ioredis)'/.exec(String((e as Error).message));
    if (missing) throw new LatteError('E_ARG', `scale-out over Redis needs the optional packages bullmq and ioredis: npm install bullmq ioredis (${missing[1]} is missing)`, { cause: e });
    throw e;
  }
}

/** Starts a worker on the image and chat queues; `await worker.close()` finishes its jobs and stops. */
export async function createWorker(options: QueueWorkerOptions): Promise<QueueWorker> {
  return (await load(() => import('./worker.js'))).createWorker(options);
}

/** The producer side: `const q = await (await createQueueClient({ redis })).ready()`; q.generateImage / q.answer / q.answerStream. */
export async function createQueueClient(options: QueueClientOptions): Promise<QueueClient> {
  return (await load(() => import('./client.js'))).createQueueClient(options);
}
