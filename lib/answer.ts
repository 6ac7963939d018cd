/**
 * The understanding loop (TypeScript over the engine's stream): render the chat template and
 * tokenize, enqueue the image encode and the prefill, then per token one native decode call whose
 * token is drawn on the engine (the sequence keeps its position, sampling settings and draw count).
 * Only token ids come back; the next step is enqueued before the current token is read, so the
 * engine never waits for JavaScript. Text is detokenized incrementally; stop tokens, stop strings
 * and the AbortSignal are checked between tokens.
 */
import { checkMessages, IMAGE_PAD, imageTokenCount, renderChat, type ChatMessage, type ChatPart, type ImageInput } from './chat.js';
import { describe, ensure, LatteError } from './errors.js';
import { imageToPixels, type ImageLimits, type RgbImage } from './image.js';
import { ropePositions } from './positions.js';
import type { NativeSequence } from './native.js';
import type { Qwen2VL } from './qwen2vl.js';
import type { Tensor } from './tensor.js';

export type { ImageInput } from './chat.js';

export interface AnswerOptions {
  /** The image the question is about: a path, the bytes of a PNG/JPEG file, or RGB/RGBA pixels with width and height. */
  image?: ImageInput;
  /** Several images for the question (instead of `image`), placed before the question in this order. */
  images?: ImageInput[];
  question: string;
  /**
   * Earlier turns before the question; a default system message leads when the first is not a
   * system message. Parts may be text or images ({ type: 'image', image }), in any turn.
   */
  history?: ChatMessage[];
  /** Most new tokens (default 256; MAX_ANSWER_TOKENS refuses only nonsense): the answer also ends where the model's context does. */
  maxTokens?: number;
  /**
   * Most prompt tokens, images' tokens included (default: DEFAULT_MAX_PROMPT_TOKENS = 8192, or twice
   * the tokens of the largest image the preprocessor makes, whichever is more: 32768 for Qwen2-VL's
   * max_pixels), never more than the model's context: a longer prompt is E_ARG before any further
   * image is encoded. Prefill time grows with it; an image of w x h pixels takes about
   * w*h / (patch * merge)^2 tokens (1/784 per pixel for Qwen2-VL).
   */
  maxPromptTokens?: number;
  /**
   * Caps on each image (DEFAULT_IMAGE_LIMITS: 36 megapixels, 64 MiB per file), checked from the
   * file's header before anything is decoded; a larger image is E_BAD_IMAGE.
   */
  imageLimits?: Partial<ImageLimits>;
  /** 0 (default) is greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Seed of the sampling draws (default 0): the same seed gives the same answer. */
  seed?: number | bigint;
  /** Extra stop strings: the answer ends before the first one. */
  stop?: string[];
  signal?: AbortSignal;
  /**
   * Called once per generated token id, in order, with the text that token completed ('' while a
   * character or a possible stop string is incomplete). The pieces join to the answer. The token that
   * ends the answer is reported too: a stop token (whose own text is never part of the answer, as in
   * transformers' streamers) or the last token allowed, with whatever text was still held back.
   * A returned promise is awaited before the next token is reported; a throw or rejection ends the answer with it.
   */
  onToken?: (text: string, tokenId: number) => unknown;
}

/** The longest conversation text (history and question) in characters: a guard on tokenizing (1M characters took 1.6 s to refuse). */
export const MAX_QUESTION_CHARS = 1 << 17;
/** The most earlier turns (history messages) one answer may have. */
export const MAX_HISTORY_MESSAGES = 1024;
/** The most stop strings one answer may have. */
export const MAX_STOPS = 64;
/** The default cap on prompt tokens (chat template, history and image tokens included); raise it per call. */
export const DEFAULT_MAX_PROMPT_TOKENS = 8192;
/** The most tokens one answer may ask for (maxTokens): larger is a mistake (answers end at the context anyway). */
export const MAX_ANSWER_TOKENS = 1 << 20;

interface PromptImage {
  pixels: Float32Array;
  shape: [number, number];
  grid: [number, number, number];
}

/** @internal A prompt ready for the engine (exported for tests). */
export interface Prepared {
  ids: Int32Array;
  images: PromptImage[];
  sampling: { temperature: number; topK: number; topP: number; seed: number | bigint };
  maxTokens: number;
}

function isRgbImage(x: unknown): x is RgbImage {
  return !!x && typeof x === 'object' && !(x instanceof Uint8Array) && 'width' in x && 'height' in x && 'data' in x;
}

/** One image -> its pixel rows and grid: the one place an image is decoded and preprocessed. */
async function loadImage(model: Qwen2VL, input: ImageInput, limits: Partial<ImageLimits> | undefined): Promise<PromptImage> {
  // decoded, resized and patchified off the event loop, within the size limits
  const pv = await imageToPixels(input, model.preprocessor, limits);
  return { pixels: pv.data, shape: pv.shape, grid: pv.grid };
}

const checkImage = (x: unknown, label: string) =>
  ensure(typeof x === 'string' || x instanceof Uint8Array || isRgbImage(x), `${label} must be a path, the bytes of a PNG/JPEG file, or {width, height, data}`, 'E_BAD_IMAGE');

const positiveInt = (v: unknown, name: string, max: number) =>
  ensure(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max, `${name} must be an integer in [1, ${max}], got ${describe(v)}`);

/** @internal Validates the options, renders and tokenizes the prompt, loads its images in document order. */
export async function prepare(model: Qwen2VL, o: AnswerOptions): Promise<Prepared> {
  ensure(o && typeof o === 'object', 'answer options must be an object');
  ensure(typeof o.question === 'string' && o.question.trim().length > 0, 'question must be a non-empty string');
  ensure(o.question.length <= MAX_QUESTION_CHARS, `question is longer than ${MAX_QUESTION_CHARS} characters`);
  const maxTokens = o.maxTokens ?? 256;
  positiveInt(maxTokens, 'maxTokens', MAX_ANSWER_TOKENS);
  const p = model.preprocessor;
  const largestImage = Math.floor(p.max_pixels / (p.patch_size * p.merge_size) ** 2);
  const maxPromptTokens = o.maxPromptTokens ?? Math.max(DEFAULT_MAX_PROMPT_TOKENS, 2 * largestImage);
  positiveInt(maxPromptTokens, 'maxPromptTokens', Number.MAX_SAFE_INTEGER);
  const temperature = o.temperature ?? 0;
  ensure(typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0, `temperature must be a finite number >= 0, got ${describe(temperature)}`);
  const topP = o.topP ?? 1;
  ensure(typeof topP === 'number' && topP > 0 && topP <= 1, `topP must be in (0, 1], got ${describe(topP)}`);
  const topK = o.topK ?? 0;
  ensure(Number.isInteger(topK) && topK >= 0, `topK must be an integer >= 0, got ${describe(topK)}`);
  const seed = o.seed ?? 0;
  ensure(typeof seed === 'bigint' ? seed >= 0n && seed < 1n << 64n : Number.isSafeInteger(seed) && seed >= 0, `seed must be a non-negative integer, got ${describe(seed)}`);
  ensure(o.signal === undefined || o.signal instanceof AbortSignal, 'signal must be an AbortSignal');
  ensure(o.onToken === undefined || typeof o.onToken === 'function', 'onToken must be a function');
  ensure(o.stop === undefined || (Array.isArray(o.stop) && o.stop.length <= MAX_STOPS && o.stop.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 1024)),
    `stop must be an array of at most ${MAX_STOPS} non-empty strings of at most 1024 characters`);
  const history = o.history ?? [];
  checkMessages(history, 'history');
  ensure(history.length <= MAX_HISTORY_MESSAGES, `history has ${history.length} messages; at most ${MAX_HISTORY_MESSAGES} are allowed`);
  // the whole conversation is rendered and tokenized on the event loop before the token cap applies
  let chars = o.question.length;
  for (const m of history) chars += typeof m.content === 'string' ? m.content.length : m.content.reduce((n, p) => n + (p.type === 'text' ? p.text.length : 0), 0);
  ensure(chars <= MAX_QUESTION_CHARS, `the conversation (history and question) has ${chars} characters; at most ${MAX_QUESTION_CHARS} are allowed`);
  ensure(o.image === undefined || o.images === undefined, 'give image or images, not both');
  ensure(o.images === undefined || Array.isArray(o.images), 'images must be an array');

  // every image in document order: history first, then the question's
  const inputs: [ImageInput, string][] = [];
  history.forEach((m, i) => {
    if (typeof m.content === 'string') return;
    m.content.forEach((p, j) => {
      if (p.type !== 'image') return;
      ensure(p.image !== undefined, `history[${i}].content[${j}]: an image part needs its image ({ type: 'image', image })`);
      inputs.push([p.image, `history[${i}].content[${j}].image`]);
    });
  });
  const asked = o.image !== undefined ? [o.image] : (o.images ?? []);
  asked.forEach((im, k) => inputs.push([im, o.image !== undefined ? 'image' : `images[${k}]`]));
  for (const [im, label] of inputs) checkImage(im, label);

  const question: ChatPart[] = [...asked.map(() => ({ type: 'image' as const })), { type: 'text', text: o.question }];
  const messages: ChatMessage[] = [...history, { role: 'user', content: question }];
  const text = model.chatTemplate ? model.chatTemplate.render(messages) : renderChat(messages);
  const textIds = model.tokenizer.encode(text);
  const padId = model.config.imageTokenId;
  const pads = textIds.reduce((n, id) => n + (id === padId ? 1 : 0), 0);
  ensure(pads === inputs.length, `the prompt has ${pads} ${IMAGE_PAD} tokens for ${inputs.length} images`);

  // refuse a prompt as soon as it is known to be too long, before encoding (more) images
  const limit = Math.min(maxPromptTokens, model.config.maxPositions - 1);
  const tooLong = (n: number, more: boolean) =>
    `the prompt has ${n} tokens${more ? ' before its remaining images' : ''}; ` +
    (limit === maxPromptTokens ? `maxPromptTokens is ${maxPromptTokens}` : `the model takes at most ${model.config.maxPositions}`);
  let length = textIds.length - inputs.length;
  ensure(textIds.length <= limit, tooLong(textIds.length, inputs.length > 0));
  const images: PromptImage[] = [];
  for (const [im, label] of inputs) {
    // one at a time: a rejected image is awaited at once (no unobserved rejections) and limits stop early
    try {
      images.push(await loadImage(model, im, o.imageLimits));
    } catch (e) {
      const err = LatteError.from(e);
      throw new LatteError(err.code, `${label}: ${err.message}`, { cause: e });
    }
    length += imageTokenCount(images[images.length - 1].grid, model.config.mergeSize);
    ensure(length + inputs.length - images.length <= limit, tooLong(length + inputs.length - images.length, images.length < inputs.length));
  }

  const ids = new Int32Array(length);
  let at = 0;
  let k = 0;
  for (const id of textIds) {
    if (id !== padId) ids[at++] = id;
    else for (let n = imageTokenCount(images[k++].grid, model.config.mergeSize); n > 0; n--) ids[at++] = padId;
  }
  const room = model.config.maxPositions - ids.length;
  return { ids, images, sampling: { temperature, topK, topP, seed }, maxTokens: Math.min(maxTokens, room) };
}

/** Emits text as it is decoded, holding back a tail that could still become a stop string. */
/** @internal exported for tests */
export class StopScanner {
  #held = '';
  done = false;
  constructor(private readonly stops: string[]) {}
  push(piece: string): string {
    this.#held += piece;
    // the answer ends before the earliest stop string in the text, whichever is listed first
    let at = -1;
    for (const s of this.stops) {
      const i = this.#held.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.done = true;
      const out = this.#held.slice(0, at);
      this.#held = '';
      return out;
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

/**
 * Streams the answer as pieces of text. Errors (a bad option, an engine failure, an exception
 * thrown by onToken, an abort) reject the iteration; nothing is left running or unobserved.
 */
/** How a scheduler takes part in an answer's decode loop (LatteFlow's continuous batching). */
export interface DecodeHooks {
  /** The sequence's next token after `token` (default: model.decode, one recorded step). */
  decode(seq: NativeSequence, token: Tensor): Tensor | Promise<Tensor>;
  /** The answer enters its decode loop; it leaves with the returned function. */
  enter(): () => void;
}

export async function* answerStream(model: Qwen2VL, options: AnswerOptions, hooks?: DecodeHooks): AsyncGenerator<string, void, undefined> {
  const req = await prepare(model, options); // validates signal too, before it is trusted
  const signal = options.signal;
  if (signal?.aborted) throw aborted(signal);
  const e = model.engine;
  const stopIds = new Set(model.stopTokenIds);
  const owned: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => (owned.push(t), t);
  // K/V preallocated for the prompt and (up to 512 of) the answer's tokens; a longer answer doubles it
  const seq = model.newSequence(req.ids.length + Math.min(req.maxTokens, 512), req.sampling);
  let token: Tensor | undefined;
  let next: Tensor | undefined;
  let leave = () => {};
  try {
    const embeds = req.images.map((im) => keep(model.encodeImage(keep(e.tensor(im.pixels, im.shape)), im.grid)));
    const { positions } = ropePositions(req.ids, req.images.map((im) => im.grid), model.config);
    const logits = model.prefill(seq, req.ids, embeds, positions);
    try {
      token = model.sample(seq, logits);
    } finally {
      logits.dispose(); // released once enqueued: the memory returns once the draw has run
    }
    const streamer = model.tokenizer.streamer();
    const scanner = new StopScanner(options.stop ?? []);
    if (hooks) leave = hooks.enter();
    for (let step = 0; token !== undefined; step++) {
      // enqueue step + 1 before waiting for this token (at most one step is wasted at the end)
      next = step + 1 < req.maxTokens ? await (hooks ? hooks.decode(seq, token) : model.decode(seq, token)) : undefined;
      const id = ((await token.read()) as Int32Array)[0];
      token.dispose();
      [token, next] = [next, undefined];
      if (signal?.aborted) throw aborted(signal);
      // the last token (a stop token, or the last allowed) carries whatever text is still held back
      const stop = stopIds.has(id);
      const last = stop || step + 1 === req.maxTokens;
      let piece = scanner.push((stop ? '' : streamer.push(id)) + (last ? streamer.flush() : ''));
      if (last && !scanner.done) piece += scanner.flush();
      // an async onToken is awaited: its rejection ends the answer with that error, never unhandled
      await options.onToken?.(piece, id);
      if (piece) yield piece;
      if (last || scanner.done) return;
    }
  } finally {
    // release everything even when one release fails (the model may have been disposed meanwhile)
    leave();
    for (const release of [() => token?.dispose(), () => next?.dispose(), () => seq.release(), ...owned.map((t) => () => t.dispose())])
      try {
        release();
      } catch {
        // already gone with the model or engine
      }
  }
}

/** Resolves to the whole answer. */
export async function answer(model: Qwen2VL, options: AnswerOptions, hooks?: DecodeHooks): Promise<string> {
  let text = '';
  for await (const piece of answerStream(model, options, hooks)) text += piece;
  return text;
}
