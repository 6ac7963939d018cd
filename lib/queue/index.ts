/**
 * Scale-out over BullMQ on Redis: workers (createWorker) run jobs on their local model; the API side
 * (createQueueClient) enqueues and waits, and is a ServedModel, so lib/serve serves it as it serves a
 * local model (`latte-flow serve --redis`). Loaded on first use: importing latte-flow loads no BullMQ.
 */
import type { QueueClient, QueueClientOptions } from './client.js';
import type { QueueWorker, QueueWorkerOptions } from './worker.js';

export type { QueueClient, QueueClientOptions } from './client.js';
export type { QueueWorker, QueueWorkerOptions } from './worker.js';

/** Starts a worker on the image and chat queues; `await worker.close()` finishes its jobs and stops. */
export async function createWorker(options: QueueWorkerOptions): Promise<QueueWorker> {
  return (await import('./worker.js')).createWorker(options);
}

/** The producer side: `const q = await (await createQueueClient({ redis })).ready()`; q.generateImage / q.answer / q.answerStream. */
export async function createQueueClient(options: QueueClientOptions): Promise<QueueClient> {
  return (await import('./client.js')).createQueueClient(options);
}
