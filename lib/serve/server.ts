/**
 * createServer(): a Fastify server of its own around the plugin (./plugin.ts). Loaded on first use
 * through ./index.ts, so that importing latte-flow does not load Fastify.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { DEFAULT_BODY_LIMIT } from './limits.js';
import { latteFlowPlugin, type LatteFlowPluginOptions } from './plugin.js';
import { ModelHolder, type ModelSource } from './served-model.js';


export interface ServeOptions extends Omit<LatteFlowPluginOptions, 'model'> {
  /** A model directory (e.g. SHIPPED_MODEL), loaded in the background while /health says 503; or a loaded model. */
  model: ModelSource;
}

/** A Fastify server with the service's routes; `latte` tells its state and when the model is loaded. */
export type LatteServer = FastifyInstance & {
  readonly latte: {
    /** 'loading' | 'ready' | 'failed' | 'draining' | 'closed' */
    readonly state: ModelHolder['state'];
    /** Settles once loading ended; then `state` is 'ready' or 'failed' (see `error`). */
    readonly loaded: Promise<void>;
    readonly error: ModelHolder['error'];
    readonly modelId: string;
    /** Aborts every request in flight (they are answered 503); close() does this after its grace period. */
    abortAll(): void;
  };
};

/**
 * A server for one model; `await server.listen({ port, host })` to serve, `await server.close()` to
 * drain and stop. Bodies over `bodyLimit` are 413 before they are read in full.
 */
export async function createServer(options: ServeOptions): Promise<LatteServer> {
  const app = Fastify({
    logger: false, // requests carry prompts and images: nothing is logged per request
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    return503OnClosing: false, // the plugin answers 503 itself, in OpenAI's shape, with /health saying why
    ajv: { customOptions: { coerceTypes: false } }, // "4" is not a number of steps
  });
  const holder = new ModelHolder(options.model, options.load ?? {}, options.modelId);
  const latte = {
    get state() {
      return holder.state;
    },
    loaded: holder.loaded,
    get error() {
      return holder.error;
    },
    modelId: holder.id,
    abortAll: () => holder.inflight.abortAll(),
  };
  app.decorate('latte', latte);
  await app.register(latteFlowPlugin, { ...options, model: holder });
  return app as unknown as LatteServer;
}
