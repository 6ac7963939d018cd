/**
 * The generation stream (this project's checkpoint format, docs/checkpoint-format.md section 2) on
 * an engine: config checked and weights bound by the engine (native/model/generator.cc).
 *
 * Routing has one owner, this class: time t -> the expert group that owns it (groupOf, on the
 * config's boundaries) -> that group's layers (layersOf); the engine runs the layer range it is given.
 */
import path from 'node:path';
import type { Engine } from './engine.js';
import { describe, ensure, native } from './errors.js';
import { openCheckpoint } from './checkpoint.js';
import { loadAddon, type NativeGenerator, type NativeGeneratorConfig, type NativeSequence, type NativeVelocityRequest } from './native.js';
import { groupOf } from './sampler.js';
import type { Tensor } from './tensor.js';
import { checkWeightStorage, type WeightStorage } from './qwen2vl.js';

export type GeneratorConfig = NativeGeneratorConfig;
export type VelocityBatchRequest = NativeVelocityRequest;

export class GenerationStream {
  readonly config: GeneratorConfig;
  readonly #native: NativeGenerator;
  readonly #engine: Engine;

  private constructor(engine: Engine, nat: NativeGenerator) {
    this.#engine = engine;
    this.#native = nat;
    this.config = nat.config;
  }

  /** Loads generator/ (config.json + safetensors) onto `engine`. E_ARG, E_BAD_CONFIG, E_BAD_WEIGHTS. */
  static load(dir: string, engine: Engine, weights: WeightStorage = 'f32'): GenerationStream {
    checkWeightStorage(weights);
    const { NativeGenerator } = loadAddon();
    const config = native(() => NativeGenerator.readConfig(path.join(dir, 'config.json')));
    const ck = openCheckpoint(dir);
    try {
      return new GenerationStream(engine, native(() => new NativeGenerator(engine.handle, ck.handle, config, weights)));
    } finally {
      ck.close();
    }
  }

  /** The expert group that owns time t: group k owns [b_k, b_{k+1}) of the boundaries, the last also t = 1. */
  groupOf(t: number): number {
    return groupOf(t, this.config.boundaries);
  }

  /** The layers [first, last) of expert group `group`: the K groups split the layers evenly, in order. */
  layersOf(group: number): [number, number] {
    const { numGroups: K, numLayers: L } = this.config;
    ensure(Number.isInteger(group) && group >= 0 && group < K, `velocity: group ${describe(group)} is outside [0, ${K})`);
    const m = L / K; // the engine refuses a config whose groups do not divide the layers
    return [group * m, (group + 1) * m];
  }

  /** The guided velocity of expert group `group` at time t (null branch only when `nul` is given). */
  velocity(x: Tensor, t: number, group: number, cond: NativeSequence, nul: NativeSequence | null, guidance: number): Tensor {
    const [first, last] = this.layersOf(group);
    return this.velocityLayers(x, t, first, last, cond, nul, guidance);
  }

  /** The same over any consecutive layers [first, last): all of them is the full-depth baseline. */
  velocityLayers(x: Tensor, t: number, first: number, last: number, cond: NativeSequence, nul: NativeSequence | null, guidance: number): Tensor {
    const e = this.#engine;
    return e.wrap(native(() => this.#native.velocityLayers(e.own(x), t, first, last, cond, nul, guidance)));
  }

  /**
   * Several requests in ONE forward of expert group `group`'s layers: x holds their latents
   * concatenated in request order (each request's `images` rows); each request brings its own time,
   * prompts and guidance. Returns their velocities in the same order: what velocity() gives each
   * of them, up to float rounding (the GEMMs see more rows). The scheduler's batch.
   */
  velocityBatch(x: Tensor, group: number, requests: readonly VelocityBatchRequest[]): Tensor {
    const [first, last] = this.layersOf(group);
    const e = this.#engine;
    return e.wrap(native(() => this.#native.velocityBatch(e.own(x), first, last, requests.map((r) => ({ ...r })))));
  }

  /**
   * E_ARG unless a prompt of `tokens` tokens (template included) leaves room for the image tokens
   * below `maxPositions` (the VLM's context): the engine checks with the rule it places them by.
   */
  checkPrompt(tokens: number, maxPositions: number): void {
    native(() => this.#native.checkPrompt(tokens, maxPositions));
  }

  /**
   * Each expert group's forward is recorded once per request as an engine program and replayed per
   * step (a CUDA graph on the GPU). Off: every step enqueues its ops afresh (the same numbers).
   */
  usePrograms(on: boolean): void {
    native(() => this.#native.usePrograms(on));
  }

  /** Frees the programs recorded for these prompts (their buffers and the prompts' K/V they hold); generateImage calls it per request. */
  releasePrograms(cond: NativeSequence, nul: NativeSequence | null): void {
    native(() => this.#native.releasePrograms(cond, nul));
  }

  dispose(): void {
    this.#native.dispose();
  }
}
