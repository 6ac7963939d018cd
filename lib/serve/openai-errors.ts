/**
 * Errors as OpenAI's API shapes them, `{ error: { message, type, param, code } }`, with the HTTP
 * status each one takes. LatteErrors keep their code (E_ARG, E_BUSY, ...), so a client can tell a bad
 * prompt from a full queue without parsing messages; HTTP-level failures get OpenAI-style codes.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { LatteError } from '../errors.js';
import { Unavailable } from './unavailable.js';

export interface OpenAIError {
  status: number;
  body: { error: { message: string; type: string; param: string | null; code: string } };
  /** seconds, for a 429's Retry-After header */
  retryAfter?: number;
}

export function openaiError(status: number, type: string, code: string, message: string, param: string | null = null): OpenAIError {
  return { status, body: { error: { message, type, param, code } } };
}

const BAD_INPUT = new Set(['E_ARG', 'E_SHAPE', 'E_DTYPE', 'E_BAD_IMAGE']);

// Fastify's own errors (parsing, limits) that reach the error handler, as OpenAI codes
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'request_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
};

/** What a thrown value becomes on the wire. `null`: no response is owed (the client went away). */
export function toOpenAIError(e: unknown): OpenAIError | null {
  if (e instanceof Unavailable) return openaiError(503, 'unavailable_error', e.code, e.message);
  if (e instanceof LatteError) {
    if (BAD_INPUT.has(e.code)) return openaiError(400, 'invalid_request_error', e.code, e.message);
    if (e.code === 'E_BUSY') {
      const err = openaiError(429, 'rate_limit_error', e.code, e.message);
      err.retryAfter = Math.max(1, Math.ceil((e.retryAfterMs ?? 1000) / 1000));
      return err;
    }
    if (e.code === 'E_ABORTED') return null;
    if (e.code === 'E_DISPOSED') return openaiError(503, 'unavailable_error', e.code, 'the model is shutting down');
    return openaiError(500, 'server_error', e.code, e.message);
  }
  const fe = e as Partial<FastifyError>;
  if (fe?.validation) {
    // the JSON schema of the route refused the body: name the field
    const v = fe.validation[0];
    const param = v?.instancePath ? v.instancePath.slice(1).replace(/\//g, '.') : ((v?.params as { missingProperty?: string })?.missingProperty ?? null);
    const allowed = (v?.params as { allowedValues?: unknown[] })?.allowedValues;
    const message = `${fe.message ?? 'invalid request'}${allowed ? `: ${allowed.map((a) => JSON.stringify(a)).join(', ')}` : ''}`;
    return openaiError(400, 'invalid_request_error', 'E_ARG', message, param);
  }
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = FASTIFY_CODES[fe.code ?? ''] ?? 'invalid_request';
    return openaiError(fe.statusCode, 'invalid_request_error', code, fe.message ?? 'invalid request');
  }
  return openaiError(500, 'server_error', 'E_INTERNAL', 'internal server error');
}

// the code of each error response, for the metrics hook (responses are counted when they end)
const sentCodes = new WeakMap<object, string>();

/** The error code an error response carried, if it was one. */
export function errorCodeOf(reply: FastifyReply): string | undefined {
  return sentCodes.get(reply.raw);
}

export function sendError(reply: FastifyReply, err: OpenAIError): FastifyReply {
  sentCodes.set(reply.raw, err.body.error.code);
  if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
  return reply.code(err.status).type('application/json').send(err.body);
}

/** The plugin's error handler: every failure in OpenAI's shape; 5xx are logged (code only, never the request). */
export function errorHandler(log: (line: string) => void) {
  return (e: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const err = toOpenAIError(e);
    if (!err) {
      // aborted because the client left: nothing to send to; end the exchange quietly
      if (!reply.raw.headersSent) reply.code(499).send();
      return;
    }
    if (err.status >= 500 && err.status !== 503) log(`${err.status} ${err.body.error.code} on ${request.method} ${request.routeOptions.url ?? '(no route)'}: ${(e as Error)?.message ?? e}`);
    return sendError(reply, err);
  };
}
