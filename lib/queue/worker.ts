/**
 * The engine side of the queue: BullMQ workers on the image and chat queues that run each job on a
 * local model through its scheduler (`concurrency` jobs of a kind at once, batched together).
 * Progress (step, group, previews as PNG) and answer pieces go out as job progress; the result (PNGs,
 * the answer) as the job's return value. Bad input and cancelled jobs fail for good (UnrecoverableError:
 * no retry); other failures are retried by BullMQ. A worker that dies holding jobs stops renewing
 * their locks: after `lockDuration`, the stalled-job check (every `stalledInterval`) hands them to
 * another worker, which runs them from the start (same seed, same result). close() (SIGTERM in
 * `latte-flow worker`) takes no new jobs and finishes those it has.
 */
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { LatteError } from '../errors.js';
import { LatteFlow, type GenerateProgress, type LatteFlowLoadOptions } from '../latte-flow.js';
import {
  CHAT_QUEUE,
  DEFAULT_PREFIX,
  FINAL_CODES,
  IMAGE_QUEUE,
  answerOptions,
  cancelChannel,
  errorReason,
  modelKey,
  wireImage,
  type ChatJobData,
  type ChatJobResult,
  type ImageJobData,
  type ImageJobResult,
  type ModelInfo,
} from './protocol.js';
import { redisOptions } from './redis.js';

export interface QueueWorkerOptions {
  /** redis://host:port[/db] */
  redis: string;
  /** A model directory (loaded, and disposed at close) or a loaded model (yours to dispose). */
  model: string | LatteFlow;
  /** LatteFlow.load options when `model` is a directory; maxBatch defaults to `concurrency`. */
  load?: LatteFlowLoadOptions;
  /** Jobs of each kind (images, answers) run at once, batched by the model's scheduler (default 4). */
  concurrency?: number;
  /** Key prefix shared with the API servers (default 'latte-flow'). */
  prefix?: string;
  /** The id the API lists for the model (default latte-flow-<folder>). */
  modelId?: string;
  /** How long a job's lock lasts without renewal: a dead worker's jobs move on after about this (default 30000 ms). */
  lockDuration?: number;
  /** How often the stalled-job check runs (default 30000 ms). */
  stalledInterval?: number;
  /** Times a job may stall (its worker died) before it fails (default 2). */
  maxStalledCount?: number;
}

const progressOf = (p: GenerateProgress) => ({ t: 'img' as const, step: p.step, steps: p.steps, group: p.group, ...(p.previews ? { previews: p.previews.map(wireImage) } : {}) });

/** A LatteError as the failure BullMQ records: final (no retry) for bad input and cancels. */
function failure(e: unknown): Error {
  const err = LatteError.from(e);
  return FINAL_CODES.has(err.code) ? new UnrecoverableError(errorReason(err)) : new Error(errorReason(err));
}

export class QueueWorker {
  readonly model: LatteFlow;
  readonly #owned: boolean;
  readonly #workers: Worker[];
  readonly #announcer: Redis;
  readonly #subscriber: Redis;
  /** the AbortController of each job running here, by `<kind>:<id>` */
  readonly #running = new Map<string, AbortController>();
  #closing: Promise<void> | undefined;
  /** Jobs finished here (completed or failed), for tests and logs. */
  done = 0;

  private constructor(model: LatteFlow, owned: boolean, o: QueueWorkerOptions) {
    this.model = model;
    this.#owned = owned;
    const connection = redisOptions(o.redis);
    const prefix = o.prefix ?? DEFAULT_PREFIX;
    const concurrency = o.concurrency ?? 4;
    const [h, w] = model.generator.config.latentSize;
    const info: ModelInfo = { id: o.modelId ?? (typeof o.model === 'string' ? `latte-flow-${o.model.replace(/\/+$/, '').split('/').pop()}` : 'latte-flow'), latentSize: [h, w], factor: model.vae.config.factor, numSteps: model.generator.config.numSteps };
    const retry = { retryStrategy: (n: number) => Math.min(100 * n, 1000) };
    // announced on every (re)connect: a restarted Redis without persistence has forgotten it
    this.#announcer = new Redis({ ...connection, ...retry, maxRetriesPerRequest: null });
    this.#announcer.on('error', () => {});
    this.#announcer.on('ready', () => void this.#announcer.set(modelKey(prefix), JSON.stringify(info)).catch(() => {}));
    this.#subscriber = new Redis({ ...connection, ...retry, maxRetriesPerRequest: null });
    this.#subscriber.on('error', () => {});
    void this.#subscriber.subscribe(cancelChannel(prefix)).catch(() => {});
    this.#subscriber.on('message', (_channel: string, key: string) => this.#running.get(key)?.abort(new LatteError('E_ABORTED', 'the job was cancelled (its client left)')));
    const options = { connection: { ...connection, ...retry }, prefix, concurrency, lockDuration: o.lockDuration ?? 30_000, stalledInterval: o.stalledInterval ?? 30_000, maxStalledCount: o.maxStalledCount ?? 2 };
    this.#workers = [new Worker<ImageJobData, ImageJobResult>(IMAGE_QUEUE, (job) => this.#track(job, IMAGE_QUEUE, (signal) => this.#image(job, signal)), options), new Worker<ChatJobData, ChatJobResult>(CHAT_QUEUE, (job) => this.#track(job, CHAT_QUEUE, (signal) => this.#chat(job, signal)), options)];
    for (const wk of this.#workers) wk.on('error', () => {}); // connection trouble: it reconnects and goes on
  }

  /** Loads the model (if given a directory) and starts taking jobs. */
  static async start(o: QueueWorkerOptions): Promise<QueueWorker> {
    const concurrency = o.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new LatteError('E_ARG', `concurrency must be a positive integer, got ${concurrency}`);
    redisOptions(o.redis); // a bad URL fails before the model loads
    const model = typeof o.model === 'string' ? await LatteFlow.load(o.model, { maxBatch: concurrency, ...o.load }) : o.model;
    const w = new QueueWorker(model, typeof o.model === 'string', o);
    await Promise.all(w.#workers.map((wk) => wk.waitUntilReady()));
    return w;
  }

  async #track<T>(job: Job, kind: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const key = `${kind}:${job.id}`;
    const ac = new AbortController();
    this.#running.set(key, ac);
    try {
      return await run(ac.signal);
    } catch (e) {
      throw failure(e);
    } finally {
      this.#running.delete(key);
      this.done++;
    }
  }

  async #image(job: Job<ImageJobData>, signal: AbortSignal): Promise<ImageJobResult> {
    const d = job.data;
    let sent = Promise.resolve();
    const images = await this.model.generateImage({
      prompt: d.prompt,
      count: d.count,
      seed: d.seed,
      steps: d.steps,
      guidance: d.guidance,
      sampler: d.sampler,
      signal,
      previewEvery: d.progress ? d.previewEvery : undefined,
      // in order: each update waits for the one before (QueueEvents hands them on in that order)
      onProgress: d.progress ? (p) => void (sent = sent.then(() => job.updateProgress(progressOf(p))).catch(() => {})) : undefined,
    });
    await sent;
    return { images: images.map(wireImage) };
  }

  async #chat(job: Job<ChatJobData>, signal: AbortSignal): Promise<ChatJobResult> {
    const d = job.data;
    const pieces: [string, number][] = [];
    let flushed = 0;
    let sending: Promise<void> | undefined;
    // pieces go out in runs: one progress update at a time, carrying all that came while the last was sent
    const flush = (): Promise<void> => {
      if (flushed === pieces.length) return Promise.resolve();
      const from = flushed;
      const run = pieces.slice(from);
      flushed = pieces.length;
      return job
        .updateProgress({ t: 'tok', from, pieces: run })
        .catch(() => {})
        .then(flush);
    };
    const onToken = (text: string, id: number) => {
      pieces.push([text, id]);
      if (d.stream) sending ??= flush().finally(() => (sending = undefined));
    };
    const text = await this.model.answer({ ...answerOptions(d), signal, onToken });
    while (sending) await sending;
    return { text, pieces };
  }

  /** Stops taking jobs, lets those running finish, closes the connections; disposes a model it loaded. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled(this.#workers.map((wk) => wk.close()));
      this.#subscriber.disconnect();
      this.#announcer.disconnect();
      if (this.#owned) await this.model.dispose();
    })();
    return this.#closing;
  }
}

/** Starts a worker: `const w = await createWorker({ redis, model: SHIPPED_MODEL })`; `await w.close()` to stop. */
export function createWorker(options: QueueWorkerOptions): Promise<QueueWorker> {
  return QueueWorker.start(options);
}
