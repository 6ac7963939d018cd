/**
 * The API side of the queue: a ServedModel whose generateImage / answer / answerStream enqueue a
 * BullMQ job and wait for it (QueueEvents), so `latte-flow serve --redis` runs lib/serve's routes over
 * it unchanged. Progress, previews and answer pieces come back as job progress, in order; the result
 * as the job's return value; a worker's LatteError as the same code (a 400 stays a 400). An aborted
 * request (the client left) removes its job if it is still waiting, or asks the workers to cancel it.
 * Redis unreachable: new requests and those in flight fail at once with a 503 (`queue_unavailable`).
 */
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { AnswerOptions } from '../answer.js';
import { LatteError } from '../errors.js';
import { decodePng } from '../image-png.js';
import { encodeJpeg, type GeneratedImage, type GenerateOptions } from '../latte-flow.js';
import { Unavailable } from '../serve/unavailable.js';
import {
  CHAT_QUEUE,
  DEFAULT_PREFIX,
  IMAGE_QUEUE,
  cancelChannel,
  chatJobData,
  errorFromReason,
  modelKey,
  pngBytes,
  type ChatJobResult,
  type ImageJobData,
  type ImageJobResult,
  type ImageProgress,
  type ModelInfo,
  type TokenProgress,
  type WireImage,
} from './protocol.js';
import { redisOptions } from './redis.js';

export interface QueueClientOptions {
  /** redis://host:port[/db] */
  redis: string;
  /** Key prefix shared with the workers (default 'latte-flow'). */
  prefix?: string;
  /** Runs of a job before it fails for good, for failures other than bad input (default 3). */
  attempts?: number;
  /** The first retry's delay in ms, doubling after (default 1000). */
  backoffMs?: number;
  /** Finished jobs kept in Redis: completed for `completedAgeS` seconds / `completedCount` jobs (default 1 h / 1000). */
  completedAgeS?: number;
  completedCount?: number;
  /** Failed jobs kept for `failedAgeS` seconds / `failedCount` jobs (default 24 h / 5000). */
  failedAgeS?: number;
  failedCount?: number;
  /** How long a request may wait for its job (queueing included) before it fails with a 503 (default 10 min). */
  jobTimeoutMs?: number;
}

type Kind = typeof IMAGE_QUEUE | typeof CHAT_QUEUE;

interface Waiter {
  progress(data: unknown): void;
  completed(value: unknown): void;
  failed(reason: string): void;
  lost(err: Error): void;
}

const unavailable = (why: string) => new Unavailable('queue_unavailable', `the job queue (Redis) is unreachable: ${why}`);

/** A GeneratedImage from a worker's PNG (pixels decoded here, for `data` and `toJPEG`). */
function generated(w: WireImage): GeneratedImage {
  const png = pngBytes(w);
  const { width, height, data } = decodePng(png);
  const warnings = Array.isArray(w.warnings) ? w.warnings.filter((x): x is string => typeof x === 'string') : [];
  return { width, height, data, seed: w.seed, toPNG: () => png, toJPEG: (quality = 90) => encodeJpeg(width, height, data, quality), warnings };
}

export class QueueClient {
  readonly prefix: string;
  readonly #conn: Redis;
  readonly #queues: Record<Kind, Queue>;
  readonly #events: Record<Kind, QueueEvents>;
  readonly #waits = new Map<string, Waiter>();
  readonly #jobOptions: JobsOptions;
  readonly #timeoutMs: number;
  #info: ModelInfo | undefined;
  #closed = false;
  #idle: (() => void)[] = [];

  constructor(o: QueueClientOptions) {
    const connection = redisOptions(o.redis);
    this.prefix = o.prefix ?? DEFAULT_PREFIX;
    this.#timeoutMs = o.jobTimeoutMs ?? 600_000;
    this.#jobOptions = {
      attempts: o.attempts ?? 3,
      backoff: { type: 'exponential', delay: o.backoffMs ?? 1000 },
      removeOnComplete: { age: o.completedAgeS ?? 3600, count: o.completedCount ?? 1000 },
      removeOnFail: { age: o.failedAgeS ?? 86_400, count: o.failedCount ?? 5000 },
    };
    // fail fast while Redis is away: no offline queue, one try per command
    this.#conn = new Redis({ ...connection, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(100 * n, 1000) });
    this.#conn.on('error', () => {}); // reconnects on its own; requests see the state
    this.#conn.on('close', () => this.#loseAll(unavailable('the connection closed; the request may or may not have run')));
    const queue = (name: Kind) => new Queue(name, { connection: this.#conn, prefix: this.prefix, defaultJobOptions: this.#jobOptions });
    this.#queues = { image: queue(IMAGE_QUEUE), chat: queue(CHAT_QUEUE) };
    const events = (name: Kind) => {
      const ev = new QueueEvents(name, { connection: { ...connection, retryStrategy: (n: number) => Math.min(100 * n, 1000) }, prefix: this.prefix });
      ev.on('error', () => {});
      ev.on('progress', ({ jobId, data }) => this.#waits.get(`${name}:${jobId}`)?.progress(data));
      ev.on('completed', ({ jobId, returnvalue }) => this.#waits.get(`${name}:${jobId}`)?.completed(typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue));
      ev.on('failed', ({ jobId, failedReason }) => this.#waits.get(`${name}:${jobId}`)?.failed(failedReason));
      return ev;
    };
    this.#events = { image: events(IMAGE_QUEUE), chat: events(CHAT_QUEUE) };
    for (const q of Object.values(this.#queues)) q.on('error', () => {});
  }

  /** Resolves once a worker has announced its model (its image size and default steps) and the event streams are read. */
  async ready(): Promise<this> {
    await Promise.all(Object.values(this.#events).map((e) => e.waitUntilReady()));
    for (;;) {
      if (this.#closed) throw new LatteError('E_DISPOSED', 'the queue client was closed');
      const text = this.#conn.status === 'ready' ? await this.#conn.get(modelKey(this.prefix)).catch(() => null) : null;
      if (text) {
        this.#info = JSON.parse(text) as ModelInfo;
        return this;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The model the workers serve (after ready()). */
  get info(): ModelInfo {
    if (!this.#info) throw new LatteError('E_ARG', 'the queue client is not ready: await client.ready() (a worker announces the model)');
    return this.#info;
  }

  get generator() {
    const i = this.info;
    return { config: { latentSize: i.latentSize, numSteps: i.numSteps } as const };
  }

  get vae() {
    return { config: { factor: this.info.factor } };
  }

  /** Jobs this client waits for. */
  get pending(): number {
    return this.#waits.size;
  }

  async generateImage(o: GenerateOptions): Promise<GeneratedImage[]> {
    let lastStep = 0; // a re-run (after a worker died) starts over: its steps up to here were reported
    const data: ImageJobData = { prompt: o.prompt, count: o.count, seed: o.seed, steps: o.steps, guidance: o.guidance, sampler: o.sampler, previewEvery: o.onProgress ? o.previewEvery : undefined, progress: !!o.onProgress };
    const onProgress = o.onProgress
      ? (p: ImageProgress) => {
          if (p.step <= lastStep) return;
          lastStep = p.step;
          return o.onProgress!({ step: p.step, steps: p.steps, group: p.group, ...(p.previews ? { previews: p.previews.map(generated) } : {}) });
        }
      : undefined;
    const r = (await this.#run(IMAGE_QUEUE, data, o.signal, onProgress as (d: unknown) => unknown).done) as ImageJobResult;
    return r.images.map(generated);
  }

  async answer(o: AnswerOptions): Promise<string> {
    const r = (await this.#run(CHAT_QUEUE, chatJobData(o, false), o.signal).done) as ChatJobResult;
    for (const [text, id] of r.pieces) await o.onToken?.(text, id);
    return r.text;
  }

  async *answerStream(o: AnswerOptions): AsyncGenerator<string, void, undefined> {
    const ready: [string, number][] = [];
    let next = 0; // pieces received so far (a re-run sends them again from 0)
    let wake: (() => void) | undefined;
    const take = (from: number, pieces: [string, number][]) => {
      for (let i = Math.max(0, next - from); i < pieces.length; i++) ready.push(pieces[i]);
      next = Math.max(next, from + pieces.length);
      wake?.();
    };
    const run = this.#run(CHAT_QUEUE, chatJobData(o, true), o.signal, (d) => take((d as TokenProgress).from, (d as TokenProgress).pieces));
    let end: { error?: unknown } | undefined;
    run.done.then(
      (r) => {
        take(0, (r as ChatJobResult).pieces); // whatever progress did not bring
        end = {};
        wake?.();
      },
      (error) => {
        end = { error };
        wake?.();
      },
    );
    try {
      for (;;) {
        while (ready.length) {
          const [text, id] = ready.shift()!;
          await o.onToken?.(text, id);
          yield text;
        }
        if (end) {
          if (end.error) throw end.error;
          return;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      if (!end) run.cancel();
    }
  }

  /** Enqueues a job and settles with its return value (or its error); `cancel` gives up on it. */
  #run(kind: Kind, data: object, signal: AbortSignal | undefined, onProgress?: (d: unknown) => unknown): { done: Promise<unknown>; cancel(): void } {
    let cancel = () => {};
    const done = new Promise<unknown>((resolve, reject) => {
      if (this.#closed) throw new LatteError('E_DISPOSED', 'the queue client was closed');
      if (signal?.aborted) throw new LatteError('E_ABORTED', 'the request was aborted', { cause: signal.reason });
      if (this.#conn.status !== 'ready') throw unavailable(`connection ${this.#conn.status}`);
      const jobId = randomUUID();
      const key = `${kind}:${jobId}`;
      let settled = false;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        this.#waits.delete(key);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.#waits.size === 0) for (const w of this.#idle.splice(0)) w();
        f();
      };
      const added = this.#queues[kind].add(kind, data, { ...this.#jobOptions, jobId });
      const giveUp = (err: Error) => {
        void added.then(() => this.#cancel(kind, jobId)).catch(() => {});
        finish(() => reject(err));
      };
      cancel = () => giveUp(new LatteError('E_ABORTED', 'the request was cancelled'));
      const onAbort = () => giveUp(new LatteError('E_ABORTED', 'the request was aborted', { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => giveUp(new Unavailable('queue_timeout', `no worker finished the job within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      timer.unref(); // the request holds the process, not its deadline
      this.#waits.set(key, {
        progress: (d) => {
          if (settled || !onProgress) return;
          try {
            const r = onProgress(d);
            if (r instanceof Promise) r.catch((e) => giveUp(e as Error));
          } catch (e) {
            giveUp(e as Error);
          }
        },
        completed: (v) => finish(() => resolve(v)),
        failed: (reason) => finish(() => reject(errorFromReason(reason))),
        lost: (err) => finish(() => reject(err)),
      });
      added.catch((e) => finish(() => reject(unavailable((e as Error).message))));
    });
    return { done, cancel: () => cancel() };
  }

  /** A job nobody waits for any more: removed if it has not started, else its worker is asked to stop it. */
  async #cancel(kind: Kind, jobId: string): Promise<void> {
    const removed = await this.#queues[kind].remove(jobId).catch(() => 0);
    if (!removed) await this.#conn.publish(cancelChannel(this.prefix), `${kind}:${jobId}`);
  }

  #loseAll(err: Error): void {
    for (const w of [...this.#waits.values()]) w.lost(err);
  }

  /** ServedModel's dispose: waits for the jobs in flight (drop: gives up on them), then closes. */
  async dispose(options?: { drop?: boolean }): Promise<void> {
    if (options?.drop) for (const key of [...this.#waits.keys()]) this.#waits.get(key)?.lost(new LatteError('E_ABORTED', 'the queue client was closed'));
    if (this.#waits.size > 0) await new Promise<void>((r) => this.#idle.push(r));
    await this.close();
  }

  /** Closes the connections; jobs still waited for fail with E_DISPOSED (use dispose() to wait for them). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#loseAll(new LatteError('E_DISPOSED', 'the queue client was closed'));
    await Promise.allSettled([...Object.values(this.#events).map((e) => e.close()), ...Object.values(this.#queues).map((q) => q.close())]);
    this.#conn.disconnect();
  }
}

/** The producer side for a Node service: `const q = await createQueueClient({ redis }).ready()`, then `q.generateImage(...)`, `q.answer(...)`. */
export function createQueueClient(options: QueueClientOptions): QueueClient {
  return new QueueClient(options);
}
