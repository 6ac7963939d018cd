/**
 * Qwen2-VL loaded from a Hugging Face model directory (config.json, model.safetensors or sharded
 * model-*.safetensors + model.safetensors.index.json, tokenizer.json, preprocessor_config.json).
 * The engine binds and checks every weight (native/model/qwen2vl.cc); this class owns the files'
 * TypeScript side: tokenizer, image preprocessing config, M-RoPE positions.
 */
import path from 'node:path';
import { Engine, type EngineOptions } from './engine.js';
import { ensure, LatteError, native } from './errors.js';
import { openCheckpoint } from './checkpoint.js';
import { readJsonObject } from './config-file.js';
import { TextTokenizer } from './tokenizer.js';
import type { PreprocessorConfig } from './image.js';
import { loadAddon, type NativeQwen2VL, type NativeQwen2VLConfig, type NativeSequence } from './native.js';
import { Tensor } from './tensor.js';
import { answer, answerStream, type AnswerOptions } from './answer.js';

export type WeightStorage = 'f32' | 'bf16';

export interface Qwen2VLLoadOptions extends EngineOptions {
  /** Weight storage: 'f32' (default) or 'bf16' (half the memory traffic; activations stay f32). */
  weights?: WeightStorage;
  /** Run on an existing engine (not disposed with the model) instead of a new one. */
  engine?: Engine;
}


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
  return cfg;
}

export class Qwen2VL {
  readonly engine: Engine;
  readonly config: NativeQwen2VLConfig;
  readonly tokenizer: TextTokenizer;
  readonly preprocessor: PreprocessorConfig;
  readonly weights: WeightStorage;
  readonly #native: NativeQwen2VL;
  readonly #ownsEngine: boolean;

  private constructor(engine: Engine, ownsEngine: boolean, nat: NativeQwen2VL, tok: TextTokenizer, pre: PreprocessorConfig, weights: WeightStorage) {
    this.engine = engine;
    this.#ownsEngine = ownsEngine;
    this.#native = nat;
    this.config = nat.config;
    this.tokenizer = tok;
    this.preprocessor = pre;
    this.weights = weights;
  }

  /**
   * Opens `dir`, checks the config and every weight's name and shape, and loads the weights onto
   * the engine (on its stream, off the event loop). Errors: E_BAD_CONFIG, E_BAD_WEIGHTS.
   */
  static async load(dir: string, options: Qwen2VLLoadOptions = {}): Promise<Qwen2VL> {
    ensure(typeof dir === 'string' && dir.length > 0, 'the model directory must be a non-empty string');
    const weights = options.weights ?? 'f32';
    ensure(weights === 'f32' || weights === 'bf16', `weights must be 'f32' or 'bf16', got ${String(weights)}`);
    ensure(options.engine === undefined || options.engine instanceof Engine, 'engine must be an Engine');
    const configPath = path.join(dir, 'config.json');
    const { text } = readJsonObject(configPath, 'E_BAD_CONFIG');
    const tokenizer = TextTokenizer.fromFile(path.join(dir, 'tokenizer.json'));
    const ck = openCheckpoint(dir);
    const engine = options.engine ?? new Engine({ backend: options.backend, threads: options.threads });
    let nat: NativeQwen2VL | undefined;
    try {
      const { NativeQwen2VL } = loadAddon();
      nat = native(() => new NativeQwen2VL(engine.handle, ck.handle, text, weights, configPath));
      const pre = preprocessorConfig(path.join(dir, 'preprocessor_config.json'), nat.config);
      for (const t of ['<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|image_pad|>', '<|vision_end|>'])
        ensure(tokenizer.id(t) < nat.config.vocabSize, `the tokenizer's ${t} is outside the model's vocabulary`, 'E_BAD_CONFIG');
      ensure(tokenizer.id('<|image_pad|>') === nat.config.imageTokenId, `the tokenizer's <|image_pad|> is not config.image_token_id ${nat.config.imageTokenId}`, 'E_BAD_CONFIG');
      await engine.fence(); // the weights are in: a conversion error surfaces here, not mid-answer
      return new Qwen2VL(engine, !options.engine, nat, tokenizer, pre, weights);
    } catch (e) {
      nat?.dispose();
      if (!options.engine) await engine.dispose({ drop: true });
      throw LatteError.from(e);
    } finally {
      ck.close(); // the engine keeps the mapping alive while its loads are queued
    }
  }

  /** pixels f32 [t*h*w, C*T*P*P] of one image -> its merged embeddings [t*h*w/merge^2, D]. */
  encodeImage(pixels: Tensor, grid: readonly [number, number, number]): Tensor {
    return this.engine.wrap(native(() => this.#native.encodeImage(this.engine.own(pixels), grid[0], grid[1], grid[2])));
  }

  /**
   * A new conversation. With `capacity` (prompt + answer tokens) its keys/values are preallocated:
   * no copy per token, and each decode step replays one recorded program (a CUDA graph on the GPU).
   */
  newSequence(capacity?: number): NativeSequence {
    return native(() => this.#native.newSequence(capacity));
  }

  /** Decode steps on reserved sequences replay one recorded step (true, the default) or run op by op. */
  usePrograms(on: boolean): void {
    native(() => this.#native.usePrograms(on));
  }

  /** The prompt (images spliced in) through the decoder -> logits of its last token [1, V] (all [S, V] with allRows). */
  prefill(seq: NativeSequence, ids: Int32Array, images: Tensor[], positions: Tensor, allRows = false): Tensor {
    const e = this.engine;
    return e.wrap(native(() => this.#native.prefill(seq, ids, images.map((t) => e.own(t)), e.own(positions), allRows)));
  }

  /** A text prompt's per-layer K/V (positions 0..S-1), for the generation stream; returns the sequence. */
  encodePrompt(ids: Int32Array, layers: number): NativeSequence {
    const e = this.engine;
    const S = ids.length;
    const seq = this.newSequence();
    const pos = e.tensor(new Int32Array(3 * S).map((_, i) => i % S), [3, 1, S], 'i32');
    native(() => this.#native.encodePrompt(seq, ids, e.own(pos), layers)).dispose();
    pos.dispose();
    return seq;
  }

  /** One sampled token (engine tensor i32 [1]) at M-RoPE position `position` -> logits [1, V]. */
  decode(seq: NativeSequence, token: Tensor, position: number): Tensor {
    return this.engine.wrap(native(() => this.#native.decode(seq, this.engine.own(token), position)));
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
