/**
 * What the HTTP layer needs of a model, and the server's view of it over time (loading -> ready ->
 * draining). `LatteFlow` satisfies ServedModel; tests may serve a stand-in.
 */
import path from 'node:path';
import type { AnswerOptions } from '../answer.js';
import { LatteError } from '../errors.js';
import { InFlight } from './inflight.js';
import { Unavailable } from './unavailable.js';
import { LatteFlow, type GeneratedImage, type GenerateOptions, type LatteFlowLoadOptions } from '../latte-flow.js';
import type { BatchInfo, SchedulerStats } from '../scheduler/index.js';

export interface ServedModel {
  generateImage(options: GenerateOptions): Promise<GeneratedImage[]>;
  answer(options: AnswerOptions): Promise<string>;
  answerStream(options: AnswerOptions): AsyncGenerator<string, void, undefined>;
  /** Default: let in-flight work finish; drop: reject it with E_ABORTED. */
  dispose(options?: { drop?: boolean }): Promise<void>;
  readonly generator: { readonly config: { readonly latentSize: readonly [number, number]; readonly numSteps: number } };
  readonly vae: { readonly config: { readonly factor: number } };
  /** The scheduler's counters (for /metrics); optional, so a stand-in model may leave them out. */
  schedulerStats?(): SchedulerStats;
  onBatch?(listener: (b: BatchInfo) => void): () => void;
}

/** A model directory to load, a loaded model, or one being loaded elsewhere. */
export type ModelSource = string | ServedModel | Promise<ServedModel>;

export type ServeState = 'loading' | 'ready' | 'failed' | 'draining' | 'closed';

/** The side length of the images the model makes, in pixels. */
export function imageSize(m: ServedModel): { width: number; height: number } {
  const [h, w] = m.generator.config.latentSize;
  const f = m.vae.config.factor;
  return { width: w * f, height: h * f };
}

/**
 * The model, the server's state and the requests in flight. The model loads in the background so that /health can answer 503
 * while it does; every model route asks `model()`, which throws a coded 503 until it is ready.
 */
export class ModelHolder {
  state: ServeState = 'loading';
  readonly id: string;
  /** Settles once the model is loaded (or failed to). */
  readonly loaded: Promise<void>;
  /** Whether dispose() is ours to call: we loaded the model from a directory. */
  readonly owned: boolean;
  /** The model requests being served. */
  readonly inflight = new InFlight();
  #model: ServedModel | undefined;
  #error: LatteError | undefined;

  constructor(source: ModelSource, load: LatteFlowLoadOptions, id?: string) {
    this.owned = typeof source === 'string';
    this.id = id ?? (typeof source === 'string' ? `latte-flow-${path.basename(path.resolve(source))}` : 'latte-flow');
    const p: Promise<ServedModel> = typeof source === 'string' ? LatteFlow.load(source, load) : Promise.resolve(source);
    this.loaded = p.then(
      (m) => {
        this.#model = m;
        if (this.state === 'loading') this.state = 'ready';
      },
      (e) => {
        this.#error = LatteError.from(e);
        if (this.state === 'loading') this.state = 'failed';
      },
    );
  }

  /** Why loading failed, if it did. */
  get error(): LatteError | undefined {
    return this.#error;
  }

  /** The model if loaded (whatever the state), for metrics and shutdown. */
  get current(): ServedModel | undefined {
    return this.#model;
  }

  /** The model for a request: 503 (coded) unless the server is ready. */
  model(): ServedModel {
    if (this.state === 'ready' && this.#model) return this.#model;
    throw unavailable(this.state);
  }
}

function unavailable(state: ServeState): Unavailable {
  switch (state) {
    case 'loading':
      return new Unavailable('model_loading', 'the model is still loading; retry shortly');
    case 'failed':
      return new Unavailable('model_failed', 'the model failed to load');
    default:
      return new Unavailable('server_draining', 'the server is shutting down');
  }
}
