/**
 * Qwen2-VL loaded from a Hugging Face model directory (config.json, model.safetensors or sharded
 * model-*.safetensors + model.safetensors.index.json, tokenizer.json, preprocessor_config.json).
 * The engine binds and checks every weight (native/model/qwen2vl.cc); this class owns the files'
 * TypeScript side: tokenizer, image preprocessing config, M-RoPE positions.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Engine, type EngineOptions } from './engine.js';
import { describe, ensure, LatteError, native } from './errors.js';
import { openCheckpoint } from './checkpoint.js';
import { readJsonObject } from './config-file.js';
import { TextTokenizer } from './tokenizer.js';
import { ChatTemplate, loadChatTemplate } from './chat-template.js';
import { IMAGE_PAD, STOP_TOKENS } from './chat.js';
import { patchOrder, type PreprocessorConfig } from './image.js';
import { loadAddon, type NativeQwen2VL, type NativeQwen2VLConfig, type NativeSampling, type NativeSequence } from './native.js';
import { ropePositions } from './positions.js';
import { Tensor } from './tensor.js';
import { answer, answerStream, type AnswerOptions } from './answer.js';

/**
 * How linear weights are stored: 'f32', 'bf16' (half the bytes; activations stay f32) or 'q8'
 * (int8 blocks of 32 with an f16 scale each, 1.06 bytes a weight; docs/quantization.md).
 */
export type WeightStorage = 'f32' | 'bf16' | 'q8';
const WEIGHT_STORAGES: readonly unknown[] = ['f32', 'bf16', 'q8'];

/** Throws E_ARG unless `weights` is a WeightStorage. */
export function checkWeightStorage(weights: unknown): asserts weights is WeightStorage {
  ensure(WEIGHT_STORAGES.includes(weights), `weights must be 'f32', 'bf16' or 'q8', got ${describe(weights)}`);
}

export interface Qwen2VLLoadOptions extends EngineOptions {
  /** Weight storage: 'f32' (default), 'bf16' or 'q8' (see WeightStorage). */
  weights?: WeightStorage;
  /** Run on an existing engine (not disposed with the model) instead of a new one. */
  engine?: Engine;
}

/**
 * The most pixels preprocessor_config.json may set as min_pixels or max_pixels (2^24, about 4096x4096).
 * Qwen2-VL's own default max_pixels is 28*28*16384 = 12845056; a value like 1e9 would let one image
 * cost minutes of vision-tower work, so it is refused at load.
 */
export const MAX_PREPROCESSOR_PIXELS = 1 << 24;

/** Hugging Face's preprocessor_config.json (older min_pixels/max_pixels or newer size.{shortest,longest}_edge). */
function preprocessorConfig(file: string, model: NativeQwen2VLConfig): PreprocessorConfig {
  const { value: p } = readJsonObject(file, 'E_BAD_CONFIG');
  const size = (p.size ?? {}) as Record<string, unknown>;
  const num = (v: unknown, name: string, dflt?: number): number => {
    const x = v ?? dflt;
    ensure(typeof x === 'number' && Number.isFinite(x) && x > 0, `${file}: ${name} must be a positive number`, 'E_BAD_CONFIG');
    return x;
  };
  const triple = (v: unknown, name: string): number[] => {
    ensure(Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x)), `${file}: ${name} must list 3 numbers`, 'E_BAD_CONFIG');
    ensure(name !== 'image_std' || v.every((x) => x !== 0), `${file}: image_std must not be 0`, 'E_BAD_CONFIG');
    return v as number[];
  };
  const cfg: PreprocessorConfig = {
    min_pixels: num(p.min_pixels ?? size.shortest_edge, 'min_pixels', 56 * 56),
    max_pixels: num(p.max_pixels ?? size.longest_edge, 'max_pixels', 28 * 28 * 1280),
    patch_size: num(p.patch_size, 'patch_size', 14),
    temporal_patch_size: num(p.temporal_patch_size, 'temporal_patch_size', 2),
    merge_size: num(p.merge_size, 'merge_size', 2),
    rescale_factor: num(p.rescale_factor, 'rescale_factor', 1 / 255),
    image_mean: triple(p.image_mean, 'image_mean'),
    image_std: triple(p.image_std, 'image_std'),
  };
  const pairs: [number, number, string][] = [
    [cfg.patch_size, model.patchSize, 'patch_size'],
    [cfg.temporal_patch_size, model.temporalPatchSize, 'temporal_patch_size'],
    [cfg.merge_size, model.mergeSize, 'merge_size'],
  ];
  for (const [a, b, name] of pairs) ensure(a === b, `${file}: ${name} ${a} differs from the model's ${b}`, 'E_BAD_CONFIG');
  ensure(cfg.min_pixels <= cfg.max_pixels, `${file}: min_pixels exceeds max_pixels`, 'E_BAD_CONFIG');
  for (const name of ['min_pixels', 'max_pixels'] as const)
    ensure(cfg[name] <= MAX_PREPROCESSOR_PIXELS, `${file}: ${name} ${cfg[name]} is above the ${MAX_PREPROCESSOR_PIXELS} pixels latte-flow accepts`, 'E_BAD_CONFIG');
  return cfg;
}

/**
 * The ids that end an answer: generation_config.json's eos_token_id (an id or a list) when the
 * directory has one that sets it, as transformers' generate() stops; else STOP_TOKENS.
 */
function stopTokenIds(dir: string, tokenizer: TextTokenizer, vocabSize: number): number[] {
  const file = path.join(dir, 'generation_config.json');
  const eos = fs.existsSync(file) ? readJsonObject(file, 'E_BAD_CONFIG').value.eos_token_id : undefined;
  if (eos === undefined || eos === null) return STOP_TOKENS.map((t) => tokenizer.id(t));
  const ids = Array.isArray(eos) ? eos : [eos];
  const ok = ids.length > 0 && ids.every((id) => Number.isInteger(id) && id >= 0 && id < vocabSize);
  ensure(ok, `${file}: eos_token_id must be a token id or a non-empty list of them, each in [0, ${vocabSize}), got ${describe(eos)}`, 'E_BAD_CONFIG');
  return ids as number[];
}

/** A template that renders an image part as anything but one image placeholder fails every image request: refuse it at load. */
function checkTemplatePlacesImages(t: ChatTemplate): void {
  let text: string;
  try {
    text = t.render([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is this?' }] }]);
  } catch (e) {
    const err = LatteError.from(e); // a refusal of this plain turn is the template's fault, not a caller's
    throw new LatteError('E_BAD_CONFIG', `${t.source}: the chat template fails on a user turn with one image (${err.message})`, { cause: e });
  }
  const pads = text.split(IMAGE_PAD).length - 1;
  ensure(pads === 1, `${t.source}: the chat template renders an image as ${pads} ${IMAGE_PAD} placeholders, not 1`, 'E_BAD_CONFIG');
}

export class Qwen2VL {
  readonly engine: Engine;
  readonly config: NativeQwen2VLConfig;
  readonly tokenizer: TextTokenizer;
  readonly preprocessor: PreprocessorConfig;
  readonly weights: WeightStorage;
  /** The checkpoint's own chat template, or undefined: answers then use chat.ts's fixed renderer. */
  readonly chatTemplate: ChatTemplate | undefined;
  /** Token ids that end an answer (generation_config.json's eos_token_id, else STOP_TOKENS). */
  readonly stopTokenIds: readonly number[];
  readonly #native: NativeQwen2VL;
  readonly #ownsEngine: boolean;

  private constructor(
    engine: Engine,
    ownsEngine: boolean,
    nat: NativeQwen2VL,
    tok: TextTokenizer,
    pre: PreprocessorConfig,
    weights: WeightStorage,
    text: { chatTemplate: ChatTemplate | undefined; stopTokenIds: number[] },
  ) {
    this.engine = engine;
    this.#ownsEngine = ownsEngine;
    this.#native = nat;
    this.config = nat.config;
    this.tokenizer = tok;
    this.preprocessor = pre;
    this.weights = weights;
    this.chatTemplate = text.chatTemplate;
    this.stopTokenIds = Object.freeze([...text.stopTokenIds]);
  }

  /**
   * Opens `dir`, checks the config and every weight's name and shape, and loads the weights onto
   * the engine (on its stream, off the event loop). Errors: E_BAD_CONFIG, E_BAD_WEIGHTS.
   */
  static async load(dir: string, options: Qwen2VLLoadOptions = {}): Promise<Qwen2VL> {
    ensure(typeof dir === 'string' && dir.length > 0, 'the model directory must be a non-empty string');
    const weights = options.weights ?? 'f32';
    checkWeightStorage(weights);
    ensure(options.engine === undefined || options.engine instanceof Engine, 'engine must be an Engine');
    const { NativeQwen2VL } = loadAddon();
    const config = native(() => NativeQwen2VL.readConfig(path.join(dir, 'config.json')));
    const tokenizer = TextTokenizer.fromFile(path.join(dir, 'tokenizer.json'));
    const chatTemplate = loadChatTemplate(dir, tokenizer.config);
    if (chatTemplate) checkTemplatePlacesImages(chatTemplate);
    const ck = openCheckpoint(dir);
    const engine = options.engine ?? new Engine({ backend: options.backend, threads: options.threads });
    let nat: NativeQwen2VL | undefined;
    try {
      nat = native(() => new NativeQwen2VL(engine.handle, ck.handle, config, weights));
      const pre = preprocessorConfig(path.join(dir, 'preprocessor_config.json'), nat.config);
      for (const t of ['<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|image_pad|>', '<|vision_end|>'])
        ensure(tokenizer.id(t) < nat.config.vocabSize, `the tokenizer's ${t} is outside the model's vocabulary`, 'E_BAD_CONFIG');
      ensure(tokenizer.id('<|vision_start|>') === nat.config.visionStartTokenId, `the tokenizer's <|vision_start|> is not config.vision_start_token_id ${nat.config.visionStartTokenId}`, 'E_BAD_CONFIG');
      // any id the tokenizer can emit must have an embedding row, or ordinary text fails every request with E_INDEX
      const [minId, maxId] = tokenizer.idRange();
      ensure(minId >= 0 && maxId < nat.config.vocabSize, `tokenizer.json has ids from ${minId} to ${maxId}; config.json vocab_size ${nat.config.vocabSize} takes 0 to ${nat.config.vocabSize - 1}`, 'E_BAD_CONFIG');
      ensure(tokenizer.id('<|image_pad|>') === nat.config.imageTokenId, `the tokenizer's <|image_pad|> is not config.image_token_id ${nat.config.imageTokenId}`, 'E_BAD_CONFIG');
      const stops = stopTokenIds(dir, tokenizer, nat.config.vocabSize);
      await engine.fence(); // the weights are in: a conversion error surfaces here, not mid-answer
      return new Qwen2VL(engine, !options.engine, nat, tokenizer, pre, weights, { chatTemplate, stopTokenIds: stops });
    } catch (e) {
      nat?.dispose();
      if (!options.engine) await engine.dispose({ drop: true });
      throw LatteError.from(e);
    } finally {
      ck.close(); // the engine keeps the mapping alive while its loads are queued
    }
  }

  /** pixels f32 [t*h*w, C*T*P*P] of one image, in the processor's patch order (preprocessImage) -> its merged embeddings [t*h*w/merge^2, D]. */
  encodeImage(pixels: Tensor, grid: readonly [number, number, number]): Tensor {
    const order = patchOrder(grid[1], grid[2], this.config.mergeSize);
    return this.engine.wrap(native(() => this.#native.encodeImage(this.engine.own(pixels), grid[0], grid[1], grid[2], order)));
  }

  /**
   * A new conversation. With `capacity` (prompt + answer tokens) its keys/values are preallocated:
   * no copy per token, and each decode step replays one recorded program (a CUDA graph on the GPU).
   * `sampling` is how its tokens are drawn (sample, decode); the default is greedy.
   */
  newSequence(capacity?: number, sampling?: NativeSampling): NativeSequence {
    return native(() => this.#native.newSequence(capacity, sampling));
  }

  /** Decode steps on reserved sequences replay one recorded step (true, the default) or run op by op. */
  usePrograms(on: boolean): void {
    native(() => this.#native.usePrograms(on));
  }

  /**
   * The prompt (images spliced in) at its M-RoPE positions (ropePositions: [3, S] row-major) through
   * the decoder -> logits of its last token [1, V] (all [S, V] with allRows). The sequence then knows
   * where its next token sits (seq.position).
   */
  prefill(seq: NativeSequence, ids: Int32Array, images: Tensor[], positions: Int32Array, allRows = false): Tensor {
    const e = this.engine;
    return e.wrap(native(() => this.#native.prefill(seq, ids, images.map((t) => e.own(t)), positions, allRows)));
  }

  /** A text prompt's per-layer K/V, for the generation stream; returns the sequence. */
  encodePrompt(ids: Int32Array, layers: number): NativeSequence {
    const seq = this.newSequence();
    const { positions } = ropePositions(ids, [], this.config);
    native(() => this.#native.encodePrompt(seq, ids, positions, layers)).dispose();
    return seq;
  }

  /** The sequence's next token id (engine tensor i32 [1]) drawn from logits [1, V] (the prefill's). */
  sample(seq: NativeSequence, logits: Tensor): Tensor {
    return this.engine.wrap(native(() => this.#native.sample(seq, this.engine.own(logits))));
  }

  /**
   * One token (engine tensor i32 [1]) at the sequence's next position -> the next token id, drawn with
   * the sequence's sampling: one native call (on a reserved sequence, one replay of the recorded step).
   */
  decode(seq: NativeSequence, token: Tensor): Tensor {
    return this.engine.wrap(native(() => this.#native.decode(seq, this.engine.own(token))));
  }

  /**
   * One decode step for several reserved sequences at once (continuous batching): tokens i32 [M], one
   * per sequence -> the next token of each, i32 [M]. Each sequence's tokens equal decode()'s (up to
   * float rounding in the batched GEMMs: greedy tokens but for near ties).
   */
  decodeBatch(seqs: NativeSequence[], tokens: Tensor): Tensor {
    return this.engine.wrap(native(() => this.#native.decodeBatch(seqs, this.engine.own(tokens))));
  }

  /** decode(), also returning the logits [1, V] the token was drawn from (parity tests, benchmarks). */
  decodeWithLogits(seq: NativeSequence, token: Tensor): { token: Tensor; logits: Tensor } {
    const [next, logits] = native(() => this.#native.decode(seq, this.engine.own(token), true));
    return { token: this.engine.wrap(next), logits: this.engine.wrap(logits) };
  }

  /** Answers a question (about an image, or text only); resolves to the whole answer. */
  answer(options: AnswerOptions): Promise<string> {
    return answer(this, options);
  }
  /** The answer as an AsyncIterable of text pieces, as they are generated. */
  answerStream(options: AnswerOptions): AsyncGenerator<string, void, undefined> {
    return answerStream(this, options);
  }

  /** Frees the weights (and the engine, unless it was passed in). */
  async dispose(): Promise<void> {
    this.#native.dispose();
    if (this.#ownsEngine) await this.engine.dispose();
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
