/**
 * The understanding loop (TypeScript over the engine's stream): render the chat template and
 * tokenize, enqueue the image encode and the prefill, then per token one native decode step whose
 * token is sampled on the engine. Only token ids come back; the next step is enqueued before the
 * current token is read, so the engine never waits for JavaScript. Text is detokenized
 * incrementally; stop tokens, stop strings and the AbortSignal are checked between tokens.
 */
import { expandImagePads, renderChat, STOP_TOKENS, type ChatMessage, type ChatPart } from './chat.js';
import { ensure, LatteError } from './errors.js';
import { decodeImage, preprocessImage, type RgbImage } from './image.js';
import { ropePositions } from './positions.js';
import type { Qwen2VL } from './qwen2vl.js';
import type { Tensor } from './tensor.js';

export type ImageInput = string | Uint8Array | RgbImage;

export interface AnswerOptions {
  /** A path, the bytes of a PNG/JPEG file, or RGB/RGBA pixels with width and height. */
  image?: ImageInput;
  question: string;
  /** Earlier turns (text only) before the question; a default system message leads when absent. */
  history?: ChatMessage[];
  /** Most new tokens (default 256). */
  maxTokens?: number;
  /** 0 (default) is greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Seed of the sampling draws (default 0): the same seed gives the same answer. */
  seed?: number | bigint;
  /** Extra stop strings: the answer ends before the first one. */
  stop?: string[];
  signal?: AbortSignal;
  /** Called with each new piece of text and the id of the token that completed it. */
  onToken?: (text: string, tokenId: number) => void;
}

export const MAX_QUESTION_CHARS = 1 << 20;

interface Prepared {
  ids: Int32Array;
  images: { pixels: Float32Array; shape: [number, number]; grid: [number, number, number] }[];
  sampling: { temperature: number; topK: number; topP: number; seed: number | bigint };
  maxTokens: number;
}

function isRgbImage(x: unknown): x is RgbImage {
  return !!x && typeof x === 'object' && !(x instanceof Uint8Array) && 'width' in x && 'height' in x && 'data' in x;
}

async function prepare(model: Qwen2VL, o: AnswerOptions): Promise<Prepared> {
  ensure(o && typeof o === 'object', 'answer options must be an object');
  ensure(typeof o.question === 'string' && o.question.trim().length > 0, 'question must be a non-empty string');
  ensure(o.question.length <= MAX_QUESTION_CHARS, `question is longer than ${MAX_QUESTION_CHARS} characters`);
  const maxTokens = o.maxTokens ?? 256;
  ensure(Number.isInteger(maxTokens) && maxTokens >= 1, `maxTokens must be an integer >= 1, got ${maxTokens}`);
  const temperature = o.temperature ?? 0;
  ensure(typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0, `temperature must be a finite number >= 0, got ${temperature}`);
  const topP = o.topP ?? 1;
  ensure(typeof topP === 'number' && topP > 0 && topP <= 1, `topP must be in (0, 1], got ${topP}`);
  const topK = o.topK ?? 0;
  ensure(Number.isInteger(topK) && topK >= 0, `topK must be an integer >= 0, got ${topK}`);
  const seed = o.seed ?? 0;
  ensure(typeof seed === 'bigint' ? seed >= 0n && seed < 1n << 64n : Number.isSafeInteger(seed) && seed >= 0, `seed must be a non-negative integer, got ${String(seed)}`);
  ensure(o.signal === undefined || o.signal instanceof AbortSignal, 'signal must be an AbortSignal');
  ensure(o.onToken === undefined || typeof o.onToken === 'function', 'onToken must be a function');
  ensure(o.stop === undefined || (Array.isArray(o.stop) && o.stop.every((s) => typeof s === 'string' && s.length > 0)), 'stop must be an array of non-empty strings');
  ensure(o.history === undefined || Array.isArray(o.history), 'history must be an array of chat messages');

  const images: Prepared['images'] = [];
  if (o.image !== undefined) {
    ensure(typeof o.image === 'string' || o.image instanceof Uint8Array || isRgbImage(o.image), 'image must be a path, the bytes of a PNG/JPEG file, or {width, height, data}', 'E_BAD_IMAGE');
    const rgb = isRgbImage(o.image) ? o.image : await decodeImage(o.image);
    try {
      const pv = preprocessImage(rgb, model.preprocessor);
      images.push({ pixels: pv.data, shape: pv.shape, grid: pv.grid });
    } catch (e) {
      throw new LatteError('E_BAD_IMAGE', `image: ${(e as Error).message}`, { cause: e });
    }
  }
  const content: ChatPart[] = [...images.map(() => ({ type: 'image' as const })), { type: 'text', text: o.question }];
  const text = expandImagePads(renderChat([...(o.history ?? []), { role: 'user', content }]), images.map((i) => i.grid), model.config.mergeSize);
  const ids = Int32Array.from(model.tokenizer.encode(text));
  const room = model.config.maxPositions - ids.length;
  ensure(room >= 1, `the prompt has ${ids.length} tokens; the model takes at most ${model.config.maxPositions}`);
  return { ids, images, sampling: { temperature, topK, topP, seed }, maxTokens: Math.min(maxTokens, room) };
}

/** Emits text as it is decoded, holding back a tail that could still become a stop string. */
class StopScanner {
  #held = '';
  done = false;
  constructor(private readonly stops: string[]) {}
  push(piece: string): string {
    this.#held += piece;
    for (const s of this.stops) {
      const at = this.#held.indexOf(s);
      if (at >= 0) {
        this.done = true;
        const out = this.#held.slice(0, at);
        this.#held = '';
        return out;
      }
    }
    let keep = 0;
    for (const s of this.stops)
      for (let k = Math.min(s.length - 1, this.#held.length); k > keep; k--)
        if (this.#held.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
    const out = this.#held.slice(0, this.#held.length - keep);
    this.#held = this.#held.slice(this.#held.length - keep);
    return out;
  }
  flush(): string {
    const out = this.#held;
    this.#held = '';
    return out;
  }
}

function aborted(signal: AbortSignal): LatteError {
  return new LatteError('E_ABORTED', 'the answer was aborted', { cause: signal.reason });
}

/** Streams the answer as pieces of text. */
export async function* answerStream(model: Qwen2VL, options: AnswerOptions): AsyncGenerator<string, void, undefined> {
  const req = await prepare(model, options); // validates signal too, before it is trusted
  const signal = options.signal;
  if (signal?.aborted) throw aborted(signal);
  const e = model.engine;
  const stopIds = new Set(STOP_TOKENS.map((t) => model.tokenizer.id(t)));
  const owned: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => (owned.push(t), t);
  // K/V preallocated for the prompt and (up to 512 of) the answer's tokens; a longer answer doubles it
  const seq = model.newSequence(req.ids.length + Math.min(req.maxTokens, 512));
  try {
    const embeds = req.images.map((im) => keep(model.encodeImage(keep(e.tensor(im.pixels, im.shape)), im.grid)));
    const { positions, delta } = ropePositions(req.ids, req.images.map((im) => im.grid), model.config);
    const S = req.ids.length;
    // per-step tensors are released as soon as their successor is enqueued (memory returns once run)
    const sample = (logits: Tensor, step: number) => {
      const t = e.sample(logits, { ...req.sampling, step });
      logits.dispose();
      return t;
    };
    let token = sample(model.prefill(seq, req.ids, embeds, keep(e.tensor(positions, [3, 1, S], 'i32'))), 0);
    const streamer = model.tokenizer.streamer();
    const scanner = new StopScanner(options.stop ?? []);
    try {
      for (let step = 0; step < req.maxTokens; step++) {
        // enqueue step + 1 before waiting for this token (at most one step is wasted at the end)
        const next = step + 1 < req.maxTokens ? sample(model.decode(seq, token, S + delta + step), step + 1) : undefined;
        const id = ((await token.read()) as Int32Array)[0];
        token.dispose();
        if (next) token = next;
        if (signal?.aborted) throw aborted(signal);
        if (stopIds.has(id)) break;
        const piece = scanner.push(streamer.push(id));
        if (piece) {
          options.onToken?.(piece, id);
          yield piece;
        }
        if (scanner.done) return;
      }
    } finally {
      token.dispose();
    }
    const rest = scanner.push(streamer.flush()) + (scanner.done ? '' : scanner.flush());
    if (rest) {
      options.onToken?.(rest, -1);
      yield rest;
    }
  } finally {
    seq.release();
    for (const t of owned) t.dispose();
  }
}

/** Resolves to the whole answer. */
export async function answer(model: Qwen2VL, options: AnswerOptions): Promise<string> {
  let text = '';
  for await (const piece of answerStream(model, options)) text += piece;
  return text;
}
