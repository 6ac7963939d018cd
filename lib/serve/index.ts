/**
 * The HTTP service: OpenAI-style image generation and chat over one LaTtE-Flow model, health,
 * Prometheus metrics and a web page. createServer() makes a Fastify server of its own (listen on it,
 * close it); latteFlowPlugin mounts the same routes in an existing Fastify app. Fastify and
 * prom-client take about half a second to import, so they load on first use, not with latte-flow.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { LatteFlowPluginOptions } from './plugin.js';
import type { LatteServer, ServeOptions } from './server.js';

export type { LatteFlowPluginOptions } from './plugin.js';
export type { LatteServer, ServeOptions } from './server.js';
export type { ServedModel, ServeState, ModelSource } from './served-model.js';

/** A server for one model: `await server.listen({ port, host })`, `await server.close()` drains and stops. */
export async function createServer(options: ServeOptions): Promise<LatteServer> {
  return (await import('./server.js')).createServer(options);
}

/** The service's routes for an existing Fastify app: `app.register(latteFlowPlugin, { model, prefix })`. */
export const latteFlowPlugin: FastifyPluginAsync<LatteFlowPluginOptions> = async (app, options) => (await import('./plugin.js')).latteFlowPlugin(app, options);
