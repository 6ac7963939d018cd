/** What every route of the plugin shares: the model, the requests in flight, the metrics. */
import type { InFlight } from './inflight.js';
import type { ServeMetrics } from './metrics.js';
import type { OpenAIError } from './openai-errors.js';
import type { ModelHolder } from './served-model.js';

export interface RouteContext {
  holder: ModelHolder;
  inflight: InFlight;
  metrics: ServeMetrics;
  /** Counts an error that a stream reported after its headers (the error handler counts the rest). */
  countError(err: OpenAIError | null): void;
}
