/**
 * Server-sent events as OpenAI streams them: `data: {json}` messages (with an `event:` line where the
 * message has a type), an error as `data: {"error": {...}}`, and `data: [DONE]` at the end. The body
 * is a stream Fastify pipes to the socket, so the response still passes its hooks (metrics).
 */
import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { OpenAIError } from './openai-errors.js';

export class SseStream {
  readonly #body = new PassThrough();
  #ended = false;

  constructor(reply: FastifyReply) {
    reply.raw.once('close', () => (this.#ended = true)); // the client left: later writes go nowhere
    reply
      .code(200)
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-accel-buffering', 'no') // a proxy must not hold events back
      .send(this.#body);
  }

  /** One message; `event` names its type (also in the JSON as `type`, for clients that ignore event lines). */
  send(data: unknown, event?: string): void {
    if (this.#ended) return;
    this.#body.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream with an error message (none when the client is gone). */
  fail(err: OpenAIError | null): void {
    if (err) this.send(err.body);
    this.#end();
  }

  /** Ends the stream with `data: [DONE]`. */
  done(): void {
    if (!this.#ended) this.#body.write('data: [DONE]\n\n');
    this.#end();
  }

  #end(): void {
    this.#ended = true;
    if (!this.#body.writableEnded) this.#body.end();
  }
}
