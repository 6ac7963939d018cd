/**
 * The in-process scheduler of one loaded model (no HTTP here): admission with a bounded queue per
 * kind of request, batching of concurrent image requests by expert group (velocity-batcher.ts) and of
 * concurrent answers' decode steps (decode-batcher.ts), and the counters a service reports.
 */
import { ensure, describe } from '../errors.js';
import type { BatchInfo } from './tick-loop.js';
import { Slots } from './slots.js';

export { Slots } from './slots.js';
export { VelocityBatcher, type Evaluation } from './velocity-batcher.js';
export { DecodeBatcher } from './decode-batcher.js';
export type { BatchInfo } from './tick-loop.js';

export interface SchedulerOptions {
  /** Requests of a kind that run (and batch) at once: images per velocity batch, answers per decode step (default 8). */
  maxBatch?: number;
  /** Requests of a kind that may wait for a slot beyond those; the next is refused with E_BUSY (default 64). */
  maxQueue?: number;
}

export interface SchedulerStats {
  imagesQueued: number;
  imagesActive: number;
  answersQueued: number;
  answersActive: number;
  /** batches run so far (image velocity batches and answer decode steps) and the rows they held */
  batches: number;
  batchRows: number;
}

export const DEFAULT_MAX_BATCH = 8;
export const DEFAULT_MAX_QUEUE = 64;

export class Scheduler {
  readonly images: Slots;
  readonly answers: Slots;
  readonly maxBatch: number;
  #batches = 0;
  #batchRows = 0;
  readonly #listeners = new Set<(b: BatchInfo) => void>();

  constructor(o: SchedulerOptions = {}) {
    const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
    const maxQueue = o.maxQueue ?? DEFAULT_MAX_QUEUE;
    ensure(Number.isInteger(maxBatch) && maxBatch >= 1 && maxBatch <= 1024, `maxBatch must be an integer in [1, 1024], got ${describe(maxBatch)}`);
    ensure(Number.isInteger(maxQueue) && maxQueue >= 0 && maxQueue <= 1 << 20, `maxQueue must be an integer in [0, 2^20], got ${describe(maxQueue)}`);
    this.maxBatch = maxBatch;
    this.images = new Slots('image', maxBatch, maxQueue);
    this.answers = new Slots('answer', maxBatch, maxQueue);
  }

  stats(): SchedulerStats {
    return {
      imagesQueued: this.images.queued,
      imagesActive: this.images.active,
      answersQueued: this.answers.queued,
      answersActive: this.answers.active,
      batches: this.#batches,
      batchRows: this.#batchRows,
    };
  }

  /** Calls `listener` after every batch; returns the unsubscribe function. A listener's throw is ignored. */
  onBatch(listener: (b: BatchInfo) => void): () => void {
    ensure(typeof listener === 'function', 'onBatch: the listener must be a function');
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Counts a batch and tells the listeners (the batchers call it). */
  batchRan = (b: BatchInfo): void => {
    this.#batches++;
    this.#batchRows += b.rows;
    for (const l of this.#listeners) {
      try {
        l(b);
      } catch {
        // a metrics listener must not break the batch that ran
      }
    }
  };
}
