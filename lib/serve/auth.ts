/**
 * Bearer-token auth for the /v1 routes (`--api-key`): `Authorization: Bearer <key>`, compared in
 * constant time (hashes of equal length, so neither the key's length nor a prefix leaks by timing).
 */
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { openaiError, sendError } from './openai-errors.js';

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

export function bearerAuth(key: string) {
  const want = digest(key);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (m && crypto.timingSafeEqual(digest(m[1]), want)) return;
    reply.header('www-authenticate', 'Bearer');
    const why = m ? 'the API key is not valid' : 'this server needs an API key: send Authorization: Bearer <key>';
    return sendError(reply, openaiError(401, 'authentication_error', 'invalid_api_key', why));
  };
}
