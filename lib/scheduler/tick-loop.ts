/**
 * The loop both batchers run: work items wait; each tick takes a batch of them and enqueues it; the
 * engine runs at most one tick ahead of JavaScript; a tick waits until every request in its loop has
 * its next item waiting, or until the engine has finished the previous tick (it never idles for a
 * straggler). Requests that start together therefore stay in lockstep and share every tick.
 */
import type { Engine } from '../engine.js';

export interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export interface BatchInfo {
  kind: 'image' | 'answer';
  /** images (generation) or sequences (answers) in the batch */
  rows: number;
  /** the expert group the batch ran (images) */
  group?: number;
}

/** W: a waiting item; M: the model part a tick runs (the generation stream, the VLM). */
export abstract class TickLoop<W extends Waiter<never>, M> {
  protected readonly waiting: W[] = [];
  protected readonly engine: Engine;
  protected readonly model: M;
  protected readonly maxBatch: number;
  /** tells the scheduler a batch ran (its counters and listeners) */
  protected readonly onBatch: (b: BatchInfo) => void;
  #running = false;
  #inLoop = 0; // requests in their loop: a tick waits for each one's next item
  #allWaiting: (() => void) | null = null;

  constructor(engine: Engine, model: M, maxBatch: number, onBatch: (b: BatchInfo) => void) {
    this.engine = engine;
    this.model = model;
    this.maxBatch = maxBatch;
    this.onBatch = onBatch;
  }

  /** The oldest items that go together, removed from `waiting`. */
  protected abstract take(): W[];
  /** Enqueues one batch and resolves its items (or rejects them all). */
  protected abstract tick(taken: W[]): void;

  /** A request enters its loop; it leaves with the returned function (idempotent). */
  enter(): () => void {
    this.#inLoop++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#inLoop--;
      this.#checkAllWaiting();
    };
  }

  protected push(w: W): void {
    this.waiting.push(w);
    this.#checkAllWaiting();
    if (!this.#running) {
      this.#running = true;
      // on the next turn: requests that arrive together meet in one tick
      setImmediate(() => void this.#run());
    }
  }

  #checkAllWaiting(): void {
    if (this.#allWaiting && this.waiting.length >= this.#inLoop) {
      const go = this.#allWaiting;
      this.#allWaiting = null;
      go();
    }
  }

  async #run(): Promise<void> {
    let behind: Promise<unknown> | undefined; // the previous tick's fence
    try {
      while (this.waiting.length) {
        this.tick(this.take());
        const fence = this.engine.fence().catch(() => {}); // a failed op is each request's to report
        await behind;
        behind = fence;
        await Promise.race([fence, new Promise<void>((r) => ((this.#allWaiting = r), this.#checkAllWaiting()))]);
        this.#allWaiting = null;
      }
    } finally {
      this.#running = false;
      if (this.waiting.length) {
        this.#running = true;
        setImmediate(() => void this.#run());
      }
    }
  }
}
