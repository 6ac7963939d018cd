/**
 * Prometheus metrics (prom-client), one registry per server so that several servers in a process
 * (tests, a host app) never share counters. HTTP requests, errors by code and latency are counted by
 * the plugin's hooks; queue depth and batches come from the model's scheduler when it has one.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatchInfo } from '../scheduler/index.js';
import type { ModelHolder } from './served-model.js';

/** Events per second over the last minute, in one-second buckets (a gauge beside the counter: rate() needs two scrapes). */
class RateWindow {
  static readonly SECONDS = 60;
  readonly #buckets = new Float64Array(RateWindow.SECONDS);
  readonly #started = Math.floor(performance.now() / 1000);
  #last = this.#started; // the second the newest bucket counts

  add(n: number): void {
    this.#advance();
    this.#buckets[this.#last % RateWindow.SECONDS] += n;
  }

  perSecond(): number {
    this.#advance();
    const span = Math.min(RateWindow.SECONDS, this.#last - this.#started + 1);
    return this.#buckets.reduce((a, b) => a + b, 0) / span;
  }

  #advance(): void {
    const now = Math.floor(performance.now() / 1000);
    for (let s = this.#last + 1; s <= Math.min(now, this.#last + RateWindow.SECONDS); s++) this.#buckets[s % RateWindow.SECONDS] = 0;
    this.#last = Math.max(this.#last, now);
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class ServeMetrics {
  readonly registry = new Registry();
  readonly #imageRate = new RateWindow();
  readonly #tokenRate = new RateWindow();
  #unsubscribe: (() => void) | undefined;

  readonly requests = new Counter({ name: 'latte_http_requests_total', help: 'HTTP requests answered, by route, method and status', labelNames: ['route', 'method', 'status'], registers: [this.registry] });
  readonly errors = new Counter({ name: 'latte_http_errors_total', help: 'error responses and stream errors, by error code', labelNames: ['code'], registers: [this.registry] });
  readonly latency = new Histogram({ name: 'latte_http_request_duration_seconds', help: 'time from request to the end of its response, by route', labelNames: ['route'], buckets: SECONDS, registers: [this.registry] });
  readonly images = new Counter({ name: 'latte_images_generated_total', help: 'images generated', registers: [this.registry] });
  readonly tokens = new Counter({ name: 'latte_tokens_generated_total', help: 'answer tokens generated', registers: [this.registry] });
  readonly batchSize = new Histogram({ name: 'latte_batch_size', help: 'rows per batched model step, by kind (image, answer)', labelNames: ['kind'], buckets: [1, 2, 4, 8, 16, 32, 64], registers: [this.registry] });

  constructor(holder: ModelHolder, inFlight: () => number) {
    collectDefaultMetrics({ register: this.registry, prefix: 'latte_' });
    // a gauge read at scrape time: `read` returns its value, or one value per label ({} for none yet)
    const gauge = (name: string, help: string, read: () => number | Record<string, number> | undefined, label?: string) =>
      new Gauge({
        name,
        help,
        labelNames: label ? [label] : [],
        registers: [this.registry],
        collect() {
          const v = read();
          if (typeof v === 'number') this.set(v);
          else for (const [k, x] of Object.entries(v ?? {})) this.set({ [label!]: k }, x);
        },
      });
    gauge('latte_http_requests_in_flight', 'model requests (images, chat) being served', inFlight);
    gauge('latte_images_per_second', 'images generated per second over the last minute', () => this.#imageRate.perSecond());
    gauge('latte_tokens_per_second', 'answer tokens per second over the last minute', () => this.#tokenRate.perSecond());
    gauge('latte_model_ready', '1 once the model is loaded and the server takes requests, 0 while loading or draining', () => (holder.state === 'ready' ? 1 : 0));
    // the scheduler's counters; no samples on a model without a scheduler
    const stats = () => holder.current?.schedulerStats?.();
    const per = <T>(f: (s: NonNullable<ReturnType<typeof stats>>) => T) => () => {
      const s = stats();
      return s && f(s);
    };
    gauge('latte_queue_depth', 'requests waiting in the model scheduler, by kind', per((s) => ({ image: s.imagesQueued, answer: s.answersQueued })), 'kind');
    gauge('latte_requests_active', 'requests the model scheduler is running, by kind', per((s) => ({ image: s.imagesActive, answer: s.answersActive })), 'kind');
    gauge('latte_batches', 'batched model steps run so far, and the rows they held', per((s) => ({ batches: s.batches, rows: s.batchRows })), 'what');
  }

  /** Starts the batch-size histogram once the model is there (when its scheduler reports batches). */
  watch(holder: ModelHolder): void {
    this.#unsubscribe = holder.current?.onBatch?.((b: BatchInfo) => this.batchSize.observe({ kind: b.kind }, b.rows));
  }

  imagesMade(n: number): void {
    this.images.inc(n);
    this.#imageRate.add(n);
  }

  tokensMade(n: number): void {
    this.tokens.inc(n);
    this.#tokenRate.add(n);
  }

  close(): void {
    this.#unsubscribe?.();
  }
}
