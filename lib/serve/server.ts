/**
 * createServer(): a Fastify server of its own around the plugin (./plugin.ts). Loaded on first use
 * through ./index.ts, so that importing latte-flow does not load Fastify.
 */
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
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
  closeIdleConnectionsOnClose(app);
  await app.register(latteFlowPlugin, { ...options, model: holder });
  return app as unknown as LatteServer;
}

/**
 * At close, connections with no request in flight (kept alive after one, or opened and not used yet,
 * as browsers and fetch do) are closed at once, and the others once their response is sent. Node's
 * server.close() leaves a connection that never sent a request open, and a client keeps an idle one
 * for the server's keep-alive time (72 s): either would hold the shutdown that long.
 */
function closeIdleConnectionsOnClose(app: FastifyInstance): void {
  const requests = new Map<Socket, number>(); // requests in flight per connection
  let closing = false;
  const sweep = () => {
    for (const [socket, n] of requests) if (n === 0) socket.destroy();
  };
  app.server.on('connection', (socket: Socket) => {
    requests.set(socket, 0);
    socket.once('close', () => requests.delete(socket));
  });
  const add = (r: FastifyRequest, d: number) => {
    const socket = r.raw.socket;
    if (requests.has(socket)) requests.set(socket, requests.get(socket)! + d);
  };
  app.addHook('onRequest', async (r) => add(r, 1));
  app.addHook('onResponse', async (r) => {
    add(r, -1);
    if (closing) setImmediate(sweep); // after Node has finished with the response
  });
  app.addHook('preClose', async () => {
    closing = true;
    sweep();
  });
}
