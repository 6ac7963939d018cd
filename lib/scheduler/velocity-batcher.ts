/**
 * Cross-request batching of a flow model by expert group (the thing LaTtE-Flow allows): every image
 * request in flight asks for the velocities its sampler needs; each tick picks ONE expert group — the
 * group of the oldest waiting evaluation, so no request waits behind newer ones — and runs a single
 * forward of that group's layers for the waiting evaluations in it (up to maxBatch images), each at
 * its own time, with its own prompts and guidance. Requests at different steps share a forward as long
 * as their times fall in the same group. The engine runs at most one tick ahead of JavaScript.
 */
import type { Engine } from '../engine.js';
import type { GenerationStream } from '../generator.js';
import { LatteError } from '../errors.js';
import type { NativeSequence } from '../native.js';
import type { Tensor } from '../tensor.js';

export interface Evaluation {
  /** the request's latents [images, C, h, w] and their time */
  x: Tensor;
  t: number;
  images: number;
  cond: NativeSequence;
  nul: NativeSequence | null;
  guidance: number;
}

interface Waiting {
  ev: Evaluation;
  group: number;
  resolve: (v: Tensor) => void;
  reject: (e: unknown) => void;
}

export interface BatchInfo {
  kind: 'image' | 'answer';
  /** images (generation) or sequences (answers) in the batch */
  rows: number;
  group?: number;
}

export class VelocityBatcher {
  readonly #engine: Engine;
  readonly #gen: GenerationStream;
  readonly #maxBatch: number;
  readonly #onBatch: (b: BatchInfo) => void;
  readonly #waiting: Waiting[] = [];
  #running = false;
  // requests in their sampling loop: a tick waits for all of them (or for the engine to need work)
  #sampling = 0;
  #allWaiting: (() => void) | null = null;

  constructor(engine: Engine, gen: GenerationStream, maxBatch: number, onBatch: (b: BatchInfo) => void) {
    this.#engine = engine;
    this.#gen = gen;
    this.#maxBatch = maxBatch;
    this.#onBatch = onBatch;
  }

  /**
   * A request enters its sampling loop (and leaves it with the returned function): while it is in,
   * a tick waits for its next evaluation unless the engine runs out of work first.
   */
  enter(): () => void {
    this.#sampling++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#sampling--;
      this.#checkAllWaiting();
    };
  }

  /** v(x, t) of the expert group that owns t, once a tick has enqueued it (the tensor is not computed yet). */
  velocity(ev: Evaluation): Promise<Tensor> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ ev, group: this.#gen.groupOf(ev.t), resolve, reject });
      this.#checkAllWaiting();
      if (!this.#running) {
        this.#running = true;
        // on the next turn: requests that arrive together meet in one tick
        setImmediate(() => void this.#run());
      }
    });
  }

  #checkAllWaiting(): void {
    if (this.#allWaiting && this.#waiting.length >= this.#sampling) {
      const go = this.#allWaiting;
      this.#allWaiting = null;
      go();
    }
  }

  async #run(): Promise<void> {
    let behind: Promise<unknown> | undefined; // the previous tick's fence
    try {
      while (this.#waiting.length) {
        this.#tick(this.#take());
        const fence = this.#engine.fence().catch(() => {}); // a failed op is each request's to report
        // one tick of lookahead: while the engine runs this tick, wait for the previous one; then
        // gather the next tick until every request in its sampling loop is waiting, or until the
        // engine has finished this tick (it must not idle for a straggler)
        await behind;
        behind = fence;
        await Promise.race([fence, new Promise<void>((r) => ((this.#allWaiting = r), this.#checkAllWaiting()))]);
        this.#allWaiting = null;
      }
    } finally {
      this.#running = false;
      if (this.#waiting.length) {
        this.#running = true;
        setImmediate(() => void this.#run());
      }
    }
  }

  /** The oldest waiting evaluation's group, and the evaluations in it, oldest first, up to maxBatch images. */
  #take(): Waiting[] {
    const group = this.#waiting[0].group;
    const taken: Waiting[] = [];
    let images = 0;
    for (const w of this.#waiting) {
      if (w.group !== group) continue;
      if (taken.length > 0 && images + w.ev.images > this.#maxBatch) break;
      taken.push(w);
      images += w.ev.images;
    }
    for (const w of taken) this.#waiting.splice(this.#waiting.indexOf(w), 1);
    return taken;
  }

  #tick(taken: Waiting[]): void {
    const group = taken[0].group;
    const made: Tensor[] = [];
    try {
      if (taken.length === 1) {
        // alone: the request's own recorded forward (a CUDA graph on the GPU), exactly as unbatched
        const { ev } = taken[0];
        taken[0].resolve(this.#gen.velocity(ev.x, ev.t, group, ev.cond, ev.nul, ev.guidance));
      } else {
        const e = this.#engine;
        let x = taken[0].ev.x;
        for (const w of taken.slice(1)) made.push((x = e.concat(x, w.ev.x, 0)));
        const v = this.#gen.velocityBatch(x, group, taken.map(({ ev }) => ({ t: ev.t, cond: ev.cond, null: ev.nul, guidance: ev.guidance, images: ev.images })));
        made.push(v);
        let at = 0;
        for (const w of taken) {
          w.resolve(e.slice(v, 0, at, w.ev.images));
          at += w.ev.images;
        }
      }
      this.#onBatch({ kind: 'image', rows: taken.reduce((n, w) => n + w.ev.images, 0), group });
    } catch (err) {
      for (const w of taken) w.reject(LatteError.from(err));
    } finally {
      for (const t of made) t.dispose(); // the engine keeps what queued ops still read
    }
  }
}
