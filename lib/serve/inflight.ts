/**
 * The model requests in flight, each with an AbortController: aborted when its client disconnects
 * (nobody is left to read the result, so the model should stop spending time on it) or when a
 * shutdown's grace period runs out.
 */
import type { FastifyReply } from 'fastify';
import { LatteError } from '../errors.js';
import { Unavailable } from './unavailable.js';

export type AbortWhy = 'client' | 'shutdown';

export interface Flight {
  signal: AbortSignal;
  /** Why the signal fired, if it did. */
  why(): AbortWhy | undefined;
  /** A model error as the route should throw it: an abort by shutdown is a 503, not a silent E_ABORTED. */
  explain(e: unknown): unknown;
}

export class InFlight {
  readonly #flights = new Map<AbortController, { why?: AbortWhy }>();
  #idle: (() => void)[] = [];

  get size(): number {
    return this.#flights.size;
  }

  /** Registers a request; it leaves the set when its response closes (sent or cut off). */
  track(reply: FastifyReply): Flight {
    const ac = new AbortController();
    const state: { why?: AbortWhy } = {};
    this.#flights.set(ac, state);
    const res = reply.raw;
    res.once('close', () => {
      // 'close' before the response ended: the client hung up
      if (!res.writableFinished && !ac.signal.aborted) {
        state.why = 'client';
        ac.abort(new LatteError('E_ABORTED', 'the client disconnected'));
      }
      this.#flights.delete(ac);
      if (this.#flights.size === 0) for (const f of this.#idle.splice(0)) f();
    });
    return {
      signal: ac.signal,
      why: () => state.why,
      explain: (e) => (state.why === 'shutdown' && e instanceof LatteError && e.code === 'E_ABORTED' ? new Unavailable('server_draining', 'the server shut down before this request finished') : e),
    };
  }

  /** Aborts every request in flight (a shutdown's grace period is over). */
  abortAll(): void {
    for (const [ac, state] of this.#flights) {
      if (ac.signal.aborted) continue;
      state.why = 'shutdown';
      ac.abort(new LatteError('E_ABORTED', 'the server is shutting down'));
    }
  }

  /** Resolves when no request is in flight. */
  idle(): Promise<void> {
    return this.#flights.size === 0 ? Promise.resolve() : new Promise((r) => this.#idle.push(r));
  }
}
