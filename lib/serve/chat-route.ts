/**
 * POST /v1/chat/completions: OpenAI's chat request with image_url parts (data URLs), max_tokens,
 * temperature, top_p, seed, stop and stream. Streamed, the answer goes out as `chat.completion.chunk`
 * events with `delta.content`, then a chunk with the finish reason, then [DONE]; the deltas join to the
 * text the same request gets unstreamed. The first piece is awaited before the headers go out, so a
 * refusal (bad input, a full queue) is still a plain 400 / 429.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify';
import type { AnswerOptions } from '../answer.js';
import { toAnswerOptions } from './chat-messages.js';
import { toOpenAIError } from './openai-errors.js';
import type { RouteContext } from './route-context.js';
import { chatSchema, type ChatRequest } from './schemas.js';
import { SseStream } from './sse.js';

/** max_tokens when the request gives none. */
export const DEFAULT_MAX_TOKENS = 256;

export function chatRoute(app: FastifyInstance, ctx: RouteContext, options: RouteShorthandOptions): void {
  app.post<{ Body: ChatRequest }>('/v1/chat/completions', { ...options, schema: { body: chatSchema } }, async (request: FastifyRequest<{ Body: ChatRequest }>, reply: FastifyReply) => {
    const model = ctx.holder.model();
    const body = request.body;
    const maxTokens = body.max_tokens ?? body.max_completion_tokens ?? DEFAULT_MAX_TOKENS;
    const flight = ctx.inflight.track(reply);
    let tokens = 0;
    const options: AnswerOptions = {
      ...toAnswerOptions(body.messages),
      maxTokens,
      temperature: body.temperature,
      topP: body.top_p,
      seed: body.seed,
      stop: typeof body.stop === 'string' ? [body.stop] : body.stop,
      signal: flight.signal,
      onToken: () => {
        tokens++;
        ctx.metrics.tokensMade(1);
      },
    };
    const id = `chatcmpl-${crypto.randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    // every token allowed was used: the answer was cut, not finished (an end token as the very last
    // allowed one reads as 'length' too; the library does not say which token ended an answer)
    const finishReason = () => (tokens >= maxTokens ? 'length' : 'stop');
    const usage = () => ({ completion_tokens: tokens });

    if (!body.stream) {
      const text = await model.answer(options).catch((e) => Promise.reject(flight.explain(e)));
      return {
        id,
        object: 'chat.completion',
        created,
        model: ctx.holder.id,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finishReason() }],
        usage: usage(),
      };
    }

    const chunk = (delta: Record<string, string>, finish_reason: string | null = null) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: ctx.holder.id,
      choices: [{ index: 0, delta, finish_reason }],
    });
    const pieces = model.answerStream(options);
    try {
      let next = await pieces.next().catch((e) => Promise.reject(flight.explain(e)));
      const sse = new SseStream(reply);
      sse.send(chunk({ role: 'assistant', content: '' }));
      try {
        for (; !next.done; next = await pieces.next()) if (next.value) sse.send(chunk({ content: next.value }));
      } catch (e) {
        const err = toOpenAIError(flight.explain(e));
        ctx.countError(err);
        sse.fail(err);
        return reply;
      }
      sse.send(chunk({}, finishReason()));
      if (body.stream_options?.include_usage) sse.send({ ...chunk({}), choices: [], usage: usage() });
      sse.done();
      return reply;
    } finally {
      await pieces.return(undefined).catch(() => {}); // an early exit frees what the answer holds
    }
  });
}
