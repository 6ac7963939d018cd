/**
 * POST /v1/images/generations: OpenAI's request (prompt, n, size, response_format b64_json) plus
 * seed, steps, guidance and sampler. `stream: true` answers with server-sent events: `progress` per
 * step ({step, steps, group}), `image_generation.partial_image` previews every few steps (the flow's
 * current estimate of the clean image, decoded), `image_generation.completed` per image, then [DONE].
 * Headers go out with the first event, so a refusal before any step (bad input, a full queue) is
 * still a plain 400 / 429.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify';
import { LatteError } from '../errors.js';
import type { GeneratedImage, GenerateProgress } from '../latte-flow.js';
import { toOpenAIError } from './openai-errors.js';
import type { RouteContext } from './route-context.js';
import { imagesSchema, type ImagesRequest } from './schemas.js';
import { imageSize } from './served-model.js';
import { SseStream } from './sse.js';

/** Previews per streamed image when the request does not say (preview_every). */
const PREVIEWS_PER_IMAGE = 6;

const b64 = (img: GeneratedImage) => Buffer.from(img.toPNG()).toString('base64');

export function imagesRoute(app: FastifyInstance, ctx: RouteContext, options: RouteShorthandOptions): void {
  app.post<{ Body: ImagesRequest }>('/v1/images/generations', { ...options, schema: { body: imagesSchema } }, async (request: FastifyRequest<{ Body: ImagesRequest }>, reply: FastifyReply) => {
    const model = ctx.holder.model();
    const body = request.body;
    const { width, height } = imageSize(model);
    if (body.size !== undefined && body.size !== `${width}x${height}`)
      throw new LatteError('E_ARG', `size must be "${width}x${height}": this model makes ${width}x${height} images (got ${JSON.stringify(body.size)})`);
    const flight = ctx.inflight.track(reply);
    const created = Math.floor(Date.now() / 1000);
    const options = { prompt: body.prompt, count: body.n ?? 1, seed: body.seed, steps: body.steps, guidance: body.guidance, sampler: body.sampler, signal: flight.signal };

    if (!body.stream) {
      const images = await model.generateImage(options).catch((e) => Promise.reject(flight.explain(e)));
      ctx.metrics.imagesMade(images.length);
      const warnings = images[0]?.warnings ?? [];
      // `warnings` (words the model never saw) only when there are any: the OpenAI shape otherwise
      return { created, data: images.map((img) => ({ b64_json: b64(img), seed: img.seed })), ...(warnings.length ? { warnings } : {}) };
    }

    const steps = body.steps ?? model.generator.config.numSteps;
    const previewEvery = body.preview_every ?? Math.max(1, Math.round(steps / PREVIEWS_PER_IMAGE));
    let sse: SseStream | undefined;
    let partials = 0;
    const onProgress = (p: GenerateProgress) => {
      sse ??= new SseStream(reply);
      sse.send({ type: 'progress', step: p.step, steps: p.steps, group: p.group }, 'progress');
      if (!p.previews?.length) return;
      const partial_image_index = partials++;
      p.previews.forEach((img, index) => sse!.send({ type: 'image_generation.partial_image', index, step: p.step, partial_image_index, b64_json: b64(img) }, 'image_generation.partial_image'));
    };
    let images: GeneratedImage[];
    try {
      images = await model.generateImage({ ...options, previewEvery: previewEvery || undefined, onProgress });
    } catch (e) {
      if (!sse) throw flight.explain(e);
      const err = toOpenAIError(flight.explain(e));
      ctx.countError(err);
      sse.fail(err);
      return reply;
    }
    ctx.metrics.imagesMade(images.length);
    sse ??= new SseStream(reply);
    images.forEach((img, index) => sse!.send({ type: 'image_generation.completed', created, index, seed: img.seed, b64_json: b64(img), ...(img.warnings.length ? { warnings: img.warnings } : {}) }, 'image_generation.completed'));
    sse.done();
    return reply;
  });
}
