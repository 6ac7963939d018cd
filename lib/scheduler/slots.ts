/**
 * Admission for one kind of request: at most `active` run at once (they form the scheduler's
 * batches), at most `queue` more wait in arrival order, and the next one is refused at once with
 * E_BUSY and a retry hint (a bounded queue: a service answers 429 instead of piling up work).
 */
import { LatteError } from '../errors.js';

interface Waiter {
  grant: () => void;
  refuse: (e: LatteError) => void;
}

export class Slots {
  #active = 0;
  readonly #waiting: Waiter[] = [];
  #closed: LatteError | null = null;
  // recent run times, for the retry hint: an exponential average in ms
  #avgMs = 0;

  constructor(
    readonly kind: string,
    readonly maxActive: number,
    readonly maxQueue: number,
  ) {}

  get active(): number {
    return this.#active;
  }
  get queued(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves with a release function once the request may run; rejects E_BUSY when the queue is full,
   * E_ABORTED when `signal` fires while it waits, E_DISPOSED once the model is closing.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(new LatteError('E_ABORTED', `the ${this.kind} request was aborted`, { cause: signal.reason }));
    if (this.#active < this.maxActive) return Promise.resolve(this.#grant());
    if (this.#waiting.length >= this.maxQueue) {
      // the wait until a slot frees: the queue ahead over the slots, times a request's run time
      const retryAfterMs = Math.max(100, Math.round(((this.#waiting.length + 1) / this.maxActive) * (this.#avgMs || 1000)));
      return Promise.reject(
        new LatteError('E_BUSY', `too many ${this.kind} requests: ${this.#active} running and ${this.#waiting.length} waiting (maxQueue); retry later`, { retryAfterMs }),
      );
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.#grant());
        },
        refuse: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(w);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(new LatteError('E_ABORTED', `the ${this.kind} request was aborted while it waited`, { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(w);
    });
  }

  /** Refuses every waiting request and all later ones with `error` (the model is closing). */
  close(error: LatteError): void {
    this.#closed = error;
    for (const w of this.#waiting.splice(0)) w.refuse(error);
  }

  #grant(): () => void {
    this.#active++;
    const started = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const ms = performance.now() - started;
      this.#avgMs = this.#avgMs ? 0.8 * this.#avgMs + 0.2 * ms : ms;
      this.#active--;
      const next = this.#waiting.shift();
      if (next) next.grant();
    };
  }
}
