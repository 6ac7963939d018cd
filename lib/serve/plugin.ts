/**
 * The Fastify plugin: every route of the service, its hooks (auth on /v1, metrics, drain) and its
 * error handling, encapsulated so that an existing app can mount it (with a prefix) without its hooks
 * touching the app's own routes. createServer() (./index.ts) wraps it in a server of its own.
 *
 * Shutdown (fastify.close(), or SIGTERM in `latte-flow serve`): the server stops accepting, /health
 * turns 503, requests in flight run to the end or, after `graceMs`, are aborted (answered 503); then
 * a model the plugin loaded is disposed.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { LatteFlowLoadOptions } from '../latte-flow.js';
import { bearerAuth } from './auth.js';
import { chatRoute } from './chat-route.js';
import { imagesRoute } from './images-route.js';
import { DEFAULT_BODY_LIMIT, DEFAULT_GRACE_MS } from './limits.js';
import { ServeMetrics } from './metrics.js';
import { errorCodeOf, errorHandler, openaiError, sendError, type OpenAIError } from './openai-errors.js';
import { pageHtml } from './page.js';
import type { RouteContext } from './route-context.js';
import { ModelHolder, type ModelSource } from './served-model.js';

export interface LatteFlowPluginOptions {
  /** A model directory (loaded in the background, disposed on close), a loaded model (yours to dispose), or a ModelHolder. */
  model: ModelSource | ModelHolder;
  /** LatteFlow.load options when `model` is a directory (backend, threads, maxBatch, maxQueue, weights). */
  load?: LatteFlowLoadOptions;
  /** The id /v1/models lists (default: latte-flow-<the model folder's name>). */
  modelId?: string;
  /** Require `Authorization: Bearer <apiKey>` on /v1 routes. */
  apiKey?: string;
  /** Largest request body in bytes (default 16 MiB): larger is 413. */
  bodyLimit?: number;
  /** How long a shutdown waits for requests in flight before aborting them (default 10000 ms). */
  graceMs?: number;
  /** Serve the web page at `/` (default true). */
  page?: boolean;
  /** Where 5xx errors are logged (one line each, never a prompt or image; default console.error). */
  log?: (line: string) => void;
}

const routeOf = (r: FastifyRequest) => r.routeOptions.url ?? 'unmatched';

export const latteFlowPlugin: FastifyPluginAsync<LatteFlowPluginOptions> = async (app: FastifyInstance, o: LatteFlowPluginOptions) => {
  const holder = o.model instanceof ModelHolder ? o.model : new ModelHolder(o.model, o.load ?? {}, o.modelId);
  const log = o.log ?? ((line: string) => console.error(`latte-flow serve: ${line}`));
  const graceMs = o.graceMs ?? DEFAULT_GRACE_MS;
  const inflight = holder.inflight;
  const metrics = new ServeMetrics(holder, () => inflight.size);
  const countError = (err: OpenAIError | null) => err && metrics.errors.inc({ code: err.body.error.code });
  const ctx: RouteContext = { holder, inflight, metrics, countError };
  void holder.loaded.then(() => metrics.watch(holder));
  const loadedAt = Math.floor(Date.now() / 1000);

  app.setErrorHandler(errorHandler(log));
  app.setNotFoundHandler((request, reply) => sendError(reply, openaiError(404, 'invalid_request_error', 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`)));

  app.addHook('onSend', async (_request, reply, payload) => {
    if (holder.state === 'draining') reply.header('connection', 'close'); // the socket closes after this response
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.requests.inc({ route: routeOf(request), method: request.method, status: String(reply.statusCode) });
    metrics.latency.observe({ route: routeOf(request) }, reply.elapsedTime / 1000);
    const code = errorCodeOf(reply);
    if (code) metrics.errors.inc({ code });
  });
  app.addHook('onRequestAbort', async (request) => {
    metrics.requests.inc({ route: routeOf(request), method: request.method, status: '499' });
  });

  // shutdown: 503 from now on; abort what is still running once the grace period is over
  let grace: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    holder.state = 'draining';
    if (inflight.size > 0) log(`shutting down: ${inflight.size} request(s) in flight, aborted after ${graceMs} ms`);
    grace = setTimeout(() => inflight.abortAll(), graceMs);
    grace.unref();
  });
  app.addHook('onClose', async () => {
    clearTimeout(grace);
    inflight.abortAll(); // nothing should be left; a host app's close must not wait on a stray one
    metrics.close();
    holder.state = 'closed';
    if (holder.owned) {
      await holder.loaded;
      await holder.current?.dispose();
    }
  });

  const v1 = { onRequest: o.apiKey ? bearerAuth(o.apiKey) : undefined, bodyLimit: o.bodyLimit ?? DEFAULT_BODY_LIMIT };
  imagesRoute(app, ctx, v1);
  chatRoute(app, ctx, v1);

  app.get('/v1/models', { onRequest: v1.onRequest }, async () => ({
    object: 'list',
    data: [{ id: holder.id, object: 'model', created: loadedAt, owned_by: 'latte-flow' }],
  }));

  app.get('/health', async (_request: FastifyRequest, reply: FastifyReply) => {
    const e = holder.error;
    reply.code(holder.state === 'ready' ? 200 : 503);
    return { status: holder.state === 'ready' ? 'ok' : holder.state, model: holder.id, ...(e ? { error: { code: e.code, message: e.message } } : {}) };
  });

  app.get('/metrics', async (_request: FastifyRequest, reply: FastifyReply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  if (o.page !== false)
    app.get('/', async (_request: FastifyRequest, reply: FastifyReply) => {
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache');
      return pageHtml();
    });
};
