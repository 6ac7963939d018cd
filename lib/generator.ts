/**
 * The generation stream (this project's checkpoint format, docs/checkpoint-format.md section 2) on
 * an engine: config checked and weights bound by the engine (native/model/generator.cc).
 */
import path from 'node:path';
import type { Engine } from './engine.js';
import { native } from './errors.js';
import { openCheckpoint } from './checkpoint.js';
import { readJsonObject } from './config-file.js';
import { loadAddon, type NativeAddon, type NativeSequence } from './native.js';
import type { Tensor } from './tensor.js';
import type { WeightStorage } from './qwen2vl.js';

export interface GeneratorConfig {
  hiddenSize: number;
  numLayers: number;
  numGroups: number;
  latentChannels: number;
  latentSize: [number, number];
  patchSize: number;
  boundaries: number[];
  guidanceScale: number;
  /** One CFG weight per expert group (time order), the default over guidanceScale when present. */
  guidancePerGroup: number[] | null;
  numSteps: number;
  sampler: 'euler' | 'heun';
  timeShift: number;
  promptTemplate: string;
  nullPrompt: string;
}

interface NativeGenerator {
  readonly config: GeneratorConfig;
  velocity(x: unknown, t: number, group: number, cond: NativeSequence, nul: NativeSequence | null, guidance: number): unknown;
  velocityLayers(x: unknown, t: number, first: number, last: number, cond: NativeSequence, nul: NativeSequence | null, guidance: number): unknown;
  usePrograms(on: boolean): void;
  releasePrograms(cond: NativeSequence, nul: NativeSequence | null): void;
  dispose(): void;
}
type GeneratorCtor = new (engine: unknown, ck: unknown, json: string, weights: WeightStorage, where: string) => NativeGenerator;

export class GenerationStream {
  readonly config: GeneratorConfig;
  readonly #native: NativeGenerator;
  readonly #engine: Engine;

  private constructor(engine: Engine, nat: NativeGenerator) {
    this.#engine = engine;
    this.#native = nat;
    this.config = nat.config;
  }

  /** Loads generator/ (config.json + safetensors) onto `engine`. E_BAD_CONFIG, E_BAD_WEIGHTS. */
  static load(dir: string, engine: Engine, weights: WeightStorage = 'f32'): GenerationStream {
    const file = path.join(dir, 'config.json');
    const { text } = readJsonObject(file);
    const ck = openCheckpoint(dir);
    try {
      const Ctor = (loadAddon() as NativeAddon & { NativeGenerator: GeneratorCtor }).NativeGenerator;
      return new GenerationStream(engine, native(() => new Ctor(engine.handle, ck.handle, text, weights, file)));
    } finally {
      ck.close();
    }
  }

  /** The guided velocity of expert group `group` at time t (null branch only when `nul` is given). */
  velocity(x: Tensor, t: number, group: number, cond: NativeSequence, nul: NativeSequence | null, guidance: number): Tensor {
    const e = this.#engine;
    return e.wrap(native(() => this.#native.velocity(e.own(x), t, group, cond, nul, guidance)) as never);
  }

  /** The same over any consecutive layers [first, last): all of them is the full-depth baseline. */
  velocityLayers(x: Tensor, t: number, first: number, last: number, cond: NativeSequence, nul: NativeSequence | null, guidance: number): Tensor {
    const e = this.#engine;
    return e.wrap(native(() => this.#native.velocityLayers(e.own(x), t, first, last, cond, nul, guidance)) as never);
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
