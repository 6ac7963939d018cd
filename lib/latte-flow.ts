/**
 * A complete LaTtE-Flow model (docs/checkpoint-format.md section 1): the Qwen2-VL that answers
 * questions and encodes prompts, the generation stream of K expert groups, and the DC-AE decoder,
 * on one engine. generateImage() is the text-to-image pipeline: the VLM computes the prompt's (and
 * the null prompt's) per-layer K/V once; the TypeScript sampler then enqueues, per step, the
 * guided velocity of the expert group that owns the step's time and the update; latents stay in
 * the engine; progress comes from fences that never stall the queue (one step of lookahead).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encode as encodePng } from 'fast-png';
import { encode as encodeJpegRgba } from 'jpeg-js';
import { DcaeDecoder, latentToRgb } from './dcae.js';
import { Engine, type EngineOptions } from './engine.js';
import { describe, ensure, LatteError } from './errors.js';
import { GenerationStream } from './generator.js';
import type { NativeSequence } from './native.js';
import { Qwen2VL, type WeightStorage } from './qwen2vl.js';
import { checkSchedule, MAX_STEPS, SAMPLER_PROGRAMS, STEP_FUNCTIONS, timeSchedule, type SamplerProgram, type StepFunction } from './sampler.js';
import { DecodeBatcher, Scheduler, VelocityBatcher, type BatchInfo, type SchedulerOptions, type SchedulerStats } from './scheduler/index.js';
import { Tensor } from './tensor.js';
import { answer, answerStream, type AnswerOptions, type DecodeHooks } from './answer.js';
import { decodeImage, type ImageLimits, type RgbImage } from './image.js';
import { imageWarnings, promptWarnings, readWorld, type ModelWorld } from './model-world.js';

export interface LatteFlowLoadOptions extends EngineOptions, SchedulerOptions {
  /** Weight storage for the VLM's and the generation stream's linear layers: 'f32' (default), 'bf16' or 'q8'. */
  weights?: WeightStorage;
}

export interface GenerateProgress {
  /** Steps completed (1..steps). */
  step: number;
  steps: number;
  /** The expert group that ran this step. */
  group: number;
  /**
   * With `previewEvery`, every that many steps (not the last): each image's current estimate of the
   * clean image (x + (1 - t) v at the step's start), decoded.
   */
  previews?: GeneratedImage[];
}

export interface GenerateOptions {
  prompt: string;
  /** Integration steps (default: the model's num_steps); at most MAX_STEPS, and count * steps too. */
  steps?: number;
  /** CFG weight w; 1 skips the null branch. An array gives each expert group its own weight (one per
   * group, in time order). Default: the model's tuned guidance_per_group, else its guidance_scale. */
  guidance?: number | readonly number[];
  /** Seed of image 0's noise; image i uses seed + i (default 0). */
  seed?: number;
  /** 'euler' | 'heun' or your own step function (lib/sampler.ts StepFunction). */
  sampler?: 'euler' | 'heun' | StepFunction;
  /** Time shift s of the schedule (default: the model's time_shift; 1 = uniform). */
  shift?: number;
  /** Your own schedule: increasing times from 0 to 1 (overrides steps and shift); at most MAX_STEPS steps. */
  schedule?: number[];
  /** Images to make in one batch (default 1). */
  count?: number;
  /** 'group' (default): each step runs its expert group; 'full': every layer (the full-depth baseline). */
  depth?: 'group' | 'full';
  /** The longest prompt in tokens, the model's template included (default MAX_PROMPT_TOKENS); longer is E_ARG. */
  maxPromptTokens?: number;
  signal?: AbortSignal;
  /** With onProgress: decode a preview of the images every this many steps (progress.previews). Default: none. */
  previewEvery?: number;
  /** Called after each step has run (a returned promise is awaited). If it throws or rejects, generation stops and generateImage rejects with that error. */
  onProgress?: (p: GenerateProgress) => unknown;
}

export interface GeneratedImage {
  width: number;
  height: number;
  /** RGB, row-major, 3 bytes per pixel */
  data: Uint8Array;
  seed: number;
  toPNG(): Uint8Array;
  /** Baseline JPEG, quality 1-100 (default 90). */
  toJPEG(quality?: number): Uint8Array;
  /** What the model warns about its prompt (words it never saw: LatteFlow.promptWarnings); often empty. */
  warnings: string[];
}

/** The longest prompt in characters (a guard on tokenizing; the token cap is what bounds the work). */
export const MAX_PROMPT_CHARS = 4096;
/**
 * The default cap on prompt tokens (template included). The prompt's K/V is attended by every image
 * token at every step, so its length is paid per step: 1,000 tokens took ~1 s per 30-step image on
 * the shipped model (2 CPU threads), 16,000 tokens 25 s; text-to-image prompts are far shorter.
 */
export const MAX_PROMPT_TOKENS = 512;
export const MAX_COUNT = 64;
export { MAX_STEPS };

/** RGB pixels -> a baseline JPEG (the queue client makes its images' toJPEG with it too). */
export function encodeJpeg(width: number, height: number, rgb: Uint8Array, quality: number): Uint8Array {
  ensure(Number.isInteger(quality) && quality >= 1 && quality <= 100, `JPEG quality must be an integer in [1, 100], got ${describe(quality)}`);
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    rgba[j] = rgb[i];
    rgba[j + 1] = rgb[i + 1];
    rgba[j + 2] = rgb[i + 2];
    rgba[j + 3] = 255;
  }
  return new Uint8Array(encodeJpegRgba({ width, height, data: rgba }, quality).data);
}

/**
 * The generator's prompt template with the prompt in place of every {prompt}, as the reference's
 * str.format does; String.replace would expand `$&` and friends inside the user's prompt.
 */
export function fillPromptTemplate(template: string, prompt: string): string {
  return template.split('{prompt}').join(prompt);
}

interface Manifest {
  vlm: string;
  generator: string;
  vae: string;
  /** the model's world.json, when it has one (lib/model-world.ts) */
  world?: string;
}

function readManifest(dir: string): Manifest {
  const file = path.join(dir, 'latte_flow.json');
  const dflt = { vlm: 'vlm', generator: 'generator', vae: 'vae' };
  let m: Record<string, unknown> = {}; // no manifest: the default parts, in the model directory
  if (!fs.existsSync(file)) {
    ensure(fs.existsSync(dir) && fs.statSync(dir).isDirectory(), `${dir}: no such model directory`, 'E_BAD_CONFIG');
  } else {
    try {
      m = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new LatteError('E_BAD_CONFIG', `${file}: not JSON (${(e as Error).message})`, { cause: e });
    }
  }
  ensure(m && typeof m === 'object', `${file}: not a JSON object`, 'E_BAD_CONFIG');
  ensure(m.format === undefined || m.format === 'latte-flow', `${file}: format must be "latte-flow"`, 'E_BAD_CONFIG');
  ensure(m.format_version === undefined || (Number.isInteger(m.format_version) && (m.format_version as number) <= 1), `${file}: format_version ${typeof m.format_version === 'number' ? m.format_version : `(a ${typeof m.format_version})`} must be an integer <= 1 (the newest this engine reads)`, 'E_BAD_CONFIG');
  const part = (k: keyof Manifest) => {
    const v = m[k] ?? dflt[k as keyof typeof dflt];
    ensure(typeof v === 'string' && v.length > 0, `${file}: "${k}" must be a relative path`, 'E_BAD_CONFIG');
    return path.resolve(dir, v);
  };
  return { vlm: part('vlm'), generator: part('generator'), vae: part('vae'), ...(m.world === undefined ? {} : { world: part('world') }) };
}

/** generateImage's options, checked and resolved to the model's defaults. */
interface ValidatedGenerate {
  prompt: string;
  guidance: number[];
  seed: number;
  count: number;
  step: StepFunction;
  /** the built-in sampler as a program the scheduler can batch; undefined for a caller's step function */
  program: SamplerProgram | undefined;
  samplerName: string;
  depth: 'group' | 'full';
  schedule: number[];
  maxPromptTokens: number;
  signal: AbortSignal | undefined;
  onProgress: GenerateOptions['onProgress'];
  previewEvery: number;
}

export class LatteFlow implements AsyncDisposable {
  readonly engine: Engine;
  readonly vlm: Qwen2VL;
  readonly generator: GenerationStream;
  readonly vae: DcaeDecoder;
  /** What the model knows of its training world (world.json), if its directory says: inputs are checked against it. */
  readonly world: ModelWorld | undefined;

  readonly #scheduler: Scheduler;
  readonly #batcher: VelocityBatcher;
  readonly #decoder: DecodeBatcher;
  // answers' decode steps: through the batcher while other answers run, else the sequence's own step
  readonly #decodeHooks: DecodeHooks;
  // aborts every request in flight when the model is disposed with drop
  readonly #closing = new AbortController();
  readonly #inFlight = new Set<Promise<unknown>>();

  private constructor(engine: Engine, vlm: Qwen2VL, gen: GenerationStream, vae: DcaeDecoder, scheduler: Scheduler, world: ModelWorld | undefined) {
    this.engine = engine;
    this.world = world;
    this.vlm = vlm;
    this.generator = gen;
    this.vae = vae;
    this.#scheduler = scheduler;
    this.#batcher = new VelocityBatcher(engine, gen, scheduler.maxBatch, scheduler.batchRan);
    this.#decoder = new DecodeBatcher(engine, vlm, scheduler.maxBatch, scheduler.batchRan);
    this.#decodeHooks = {
      decode: (seq, token) => (scheduler.answers.active < 2 ? vlm.decode(seq, token) : this.#decoder.decode(seq, token)),
      enter: () => this.#decoder.enter(),
    };
  }

  /** Loads and cross-checks the three parts. E_BAD_CONFIG, E_BAD_WEIGHTS. */
  static async load(dir: string, options: LatteFlowLoadOptions = {}): Promise<LatteFlow> {
    ensure(typeof dir === 'string' && dir.length > 0, 'the model directory must be a non-empty string');
    const m = readManifest(dir);
    const world = m.world === undefined ? undefined : readWorld(m.world); // small, and checked before any weights load
    const scheduler = new Scheduler({ maxBatch: options.maxBatch, maxQueue: options.maxQueue });
    const engine = new Engine({ backend: options.backend, threads: options.threads });
    const parts: { dispose(): unknown }[] = [];
    try {
      const vlm = await Qwen2VL.load(m.vlm, { engine, weights: options.weights });
      parts.push(vlm);
      const gen = GenerationStream.load(m.generator, engine, options.weights ?? 'f32');
      parts.push(gen);
      const vae = DcaeDecoder.load(m.vae, engine);
      parts.push(vae);
      const g = gen.config;
      ensure(g.hiddenSize === vlm.config.hiddenSize, `the generator's hidden_size ${g.hiddenSize} differs from the VLM's ${vlm.config.hiddenSize}`, 'E_BAD_CONFIG');
      ensure(g.numLayers <= vlm.config.layers, `the generator has ${g.numLayers} layers but the VLM only ${vlm.config.layers}`, 'E_BAD_CONFIG');
      ensure(g.latentChannels === vae.config.latentChannels, `the generator's latent_channels ${g.latentChannels} differ from the VAE's ${vae.config.latentChannels}`, 'E_BAD_CONFIG');
      await engine.fence();
      return new LatteFlow(engine, vlm, gen, vae, scheduler, world);
    } catch (e) {
      for (const p of parts.reverse()) await p.dispose();
      await engine.dispose({ drop: true });
      throw LatteError.from(e);
    }
  }

  /** Warnings about a prompt or question: words the model never saw (none for a model without world.json). */
  promptWarnings(text: string): string[] {
    ensure(typeof text === 'string', 'text must be a string');
    return this.world ? promptWarnings(this.world, text.slice(0, MAX_PROMPT_CHARS)) : [];
  }

  /**
   * Warnings about an image to ask about (a path, PNG/JPEG bytes or an RGB(A) image): another size than
   * the model's pictures once resized, or colours it never saw. Decoding runs in the image worker under
   * the usual limits (E_BAD_IMAGE). None for a model without world.json.
   */
  async imageWarnings(image: string | Uint8Array | RgbImage, limits?: Partial<ImageLimits>): Promise<string[]> {
    if (!this.world) return [];
    const rgb = typeof image === 'string' || image instanceof Uint8Array ? await decodeImage(image, limits) : image;
    return imageWarnings(this.world, rgb, this.vlm.preprocessor);
  }

  /** Answers a question (Qwen2VL.answer), admitted by the scheduler: E_BUSY when its queue is full. */
  async answer(options: AnswerOptions): Promise<string> {
    return this.#admitted(this.#scheduler.answers, options?.signal, (signal) => answer(this.vlm, { ...options, signal }, this.#decodeHooks));
  }
  /** The answer as it is generated (Qwen2VL.answerStream), admitted as answer(): the first next() rejects E_BUSY when full. */
  async *answerStream(options: AnswerOptions): AsyncGenerator<string, void, undefined> {
    const signal = this.#signal(options?.signal);
    const release = await this.#scheduler.answers.acquire(signal);
    const done = this.#track();
    try {
      yield* answerStream(this.vlm, { ...options, signal }, this.#decodeHooks);
    } finally {
      release();
      done();
    }
  }

  /** Requests waiting and running, per kind, and the batches run so far (for a service's metrics). */
  schedulerStats(): SchedulerStats {
    return this.#scheduler.stats();
  }

  /** Calls `listener` after every batch the scheduler runs; returns the unsubscribe function. */
  onBatch(listener: (b: BatchInfo) => void): () => void {
    return this.#scheduler.onBatch(listener);
  }

  /** The caller's signal joined with the model's own (dispose with drop aborts every request). */
  #signal(user: AbortSignal | undefined): AbortSignal {
    ensure(user === undefined || user instanceof AbortSignal, 'signal must be an AbortSignal');
    return user ? AbortSignal.any([user, this.#closing.signal]) : this.#closing.signal;
  }

  /** Marks a request in flight until the returned function is called (dispose drains them). */
  #track(): () => void {
    let end!: () => void;
    const p = new Promise<void>((r) => (end = r));
    this.#inFlight.add(p);
    return () => {
      this.#inFlight.delete(p);
      end();
    };
  }

  async #admitted<T>(slots: Scheduler['images'], user: AbortSignal | undefined, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = this.#signal(user);
    const done = this.#track(); // from the call on: a dispose that starts now drains this request too
    try {
      const release = await slots.acquire(signal);
      try {
        return await run(signal);
      } finally {
        release();
      }
    } finally {
      done();
    }
  }

  /**
   * Text -> images. Resolves when every image is decoded; rejects E_ABORTED within one step of an
   * abort. If `onProgress` or a custom sampler throws, or the engine fails mid-run, generation stops
   * and the promise rejects with that (first) error, unchanged; nothing is left queued, allocated or
   * recorded, and onProgress is not called again.
   */
  async generateImage(options: GenerateOptions): Promise<GeneratedImage[]> {
    const o = this.#validate(options); // bad input is refused before it takes a place in the queue
    const warnings = this.promptWarnings(o.prompt);
    const images = await this.#admitted(this.#scheduler.images, o.signal, (signal) => this.#generate({ ...o, signal }));
    for (const img of images) img.warnings = [...warnings];
    return images;
  }

  async #generate(o: ValidatedGenerate & { signal: AbortSignal }): Promise<GeneratedImage[]> {
    const e = this.engine;
    const g = this.generator.config;
    const [h, w] = g.latentSize;
    const seqs: NativeSequence[] = [];
    // every tensor this call made, its step functions' included: freed when the call ends
    const owned = new Set<Tensor>();
    const own = (t: Tensor) => (owned.add(t), t);
    // the last step's fence and progress call: every one gets a handler at once (an abandoned
    // rejection would otherwise kill the process) and is awaited one step later
    let pending: Promise<unknown> | undefined;
    let queued = false; // anything of this call on the engine's stream
    let failed = false;
    let leaveBatcher = () => {};
    try {
      const encode = (text: string, cap: number) => {
        const ids = Int32Array.from(this.vlm.tokenizer.encode(fillPromptTemplate(g.promptTemplate, text)));
        ensure(ids.length <= cap, `the prompt is ${ids.length} tokens (with the model's template); the limit is ${cap} (maxPromptTokens)`);
        this.generator.checkPrompt(ids.length, this.vlm.config.maxPositions);
        queued = true;
        const s = this.vlm.encodePrompt(ids, g.numLayers);
        seqs.push(s);
        return s;
      };
      const cond = encode(o.prompt, o.maxPromptTokens);
      const nul = o.guidance.every((w) => w === 1) ? null : encode(g.nullPrompt, Infinity);
      let x = own(e.noise([1, g.latentChannels, h, w], o.seed));
      for (let i = 1; i < o.count; i++) x = own(e.concat(x, own(e.noise([1, g.latentChannels, h, w], o.seed + i)), 0));
      const ts = o.schedule;
      const steps = ts.length - 1;
      const guidanceAt = (t: number) => o.guidance[this.generator.groupOf(t)];
      const velocity = (xx: Tensor, t: number) => {
        const k = this.generator.groupOf(t);
        const w = o.guidance[k];
        const n = w === 1 ? null : nul;
        return o.depth === 'full' ? this.generator.velocityLayers(xx, t, 0, g.numLayers, cond, n, w) : this.generator.velocity(xx, t, k, cond, n, w);
      };
      // a built-in sampler's evaluations go through the scheduler's batcher while other image requests
      // run (one forward for every request in the same expert group); alone, straight to the engine
      let batched = false; // this step went through the batcher, whose ticks keep the engine one ahead
      const evaluate = async (xx: Tensor, t: number): Promise<Tensor> => {
        if (this.#scheduler.images.active < 2) return velocity(xx, t);
        batched = true;
        const w = guidanceAt(t);
        return this.#batcher.velocity({ x: xx, t, images: o.count, cond, nul: w === 1 ? null : nul, guidance: w });
      };
      // a built-in sampler's request tells the batcher it is sampling, so ticks wait for its evaluations
      if (o.program && o.depth === 'group') leaveBatcher = this.#batcher.enter();
      for (let i = 0; i < steps; i++) {
        if (o.signal.aborted) throw new LatteError('E_ABORTED', 'image generation was aborted', { cause: o.signal.reason });
        const group = o.depth === 'full' ? 0 : this.generator.groupOf(ts[i]);
        const base = { engine: e, x, t0: ts[i], t1: ts[i + 1], dt: Math.fround(ts[i + 1] - ts[i]), step: i };
        let start: [Tensor, number, Tensor] | undefined; // the step's first evaluation: (x, t, v), for a preview
        batched = false;
        if (o.program && o.depth === 'group') {
          const it = o.program(base);
          // what the sampler makes stays alive to the end of the call, as below
          let r = e.collect(() => it.next(), own);
          while (!r.done) {
            const [xx, t] = r.value;
            const v = own(await evaluate(xx, t));
            start ??= [xx, t, v];
            r = e.collect(() => it.next(v), own);
          }
          x = this.#checkStep(r.value, x, o.samplerName, i);
        } else {
          const recorded = (xx: Tensor, t: number) => {
            const v = velocity(xx, t);
            start ??= [xx, t, v];
            return v;
          };
          // what a step function makes stays alive to the end of the call (multistep samplers keep
          // earlier velocities); all of it is freed then, also when the step function throws
          x = this.#checkStep(e.collect(() => o.step({ ...base, velocity: recorded }), own), x, o.samplerName, i);
        }
        const previews = o.previewEvery && (i + 1) % o.previewEvery === 0 && i + 1 < steps && start ? this.#preview(start, o.count, o.seed, own) : undefined;
        // batched and nobody to tell: no fence of its own (the batcher's ticks already keep the engine
        // one tick ahead, and a fence per request per step cost more than the batch saved)
        if (batched && !o.onProgress && !previews) continue;
        // an async onProgress's promise is chained in, so its rejection is the call's, never unhandled
        const done = e.fence().then(async () => (failed ? undefined : o.onProgress?.({ step: i + 1, steps, group, ...(previews ? { previews: await previews } : {}) })));
        done.catch(() => {});
        const prev = pending;
        pending = done;
        // one step of lookahead: the engine always has the next step queued, JS never waits on it
        await prev;
      }
      await pending;
      leaveBatcher();
      if (o.signal.aborted) throw new LatteError('E_ABORTED', 'image generation was aborted', { cause: o.signal.reason });
      return await this.#decode(x, o.count, o.seed, own);
    } catch (err) {
      failed = true;
      leaveBatcher();
      // let what is queued (a step may have failed halfway) run before its programs and tensors go:
      // nothing of this call runs after it rejects
      if (queued) await e.fence().catch(() => {});
      throw err;
    } finally {
      try {
        if (seqs.length) this.generator.releasePrograms(seqs[0], seqs[1] ?? null);
      } catch {
        // a disposed generator has nothing left to release; the rest of the cleanup must still run
      }
      for (const s of seqs) s.release();
      for (const t of owned) t.dispose();
    }
  }

  /** Latents -> images (the DC-AE applies its own scaling). */
  async #decode(x: Tensor, count: number, seed: number, own: (t: Tensor) => Tensor): Promise<GeneratedImage[]> {
    const img = own(this.vae.decode(x));
    const [, , H, W] = img.shape;
    return latentToRgb(await img.readFloat32(), count, H, W).map((data, i) => ({
      width: W,
      height: H,
      data,
      seed: seed + i,
      toPNG: () => encodePng({ width: W, height: H, data, channels: 3, depth: 8 }),
      toJPEG: (quality = 90) => encodeJpeg(W, H, data, quality),
      warnings: [],
    }));
  }

  /** The flow's current estimate of the clean images from a step's start: x1 = x + (1 - t) v, decoded. */
  #preview([x, t, v]: [Tensor, number, Tensor], count: number, seed: number, own: (t: Tensor) => Tensor): Promise<GeneratedImage[]> {
    const p = this.#decode(own(this.engine.axpby(1, x, Math.fround(1 - t), v)), count, seed, own);
    p.catch(() => {}); // awaited in the step's progress chain; a failure there is the call's
    return p;
  }

  /** A step function's result must be the next latent: a live f32 tensor of this engine shaped like x. */
  #checkStep(next: unknown, x: Tensor, name: string, step: number): Tensor {
    // an async step function's promise is refused below; observe it so its rejection is not unhandled
    if (next && typeof (next as PromiseLike<unknown>).then === 'function') (next as PromiseLike<unknown>).then(undefined, () => {});
    const what = `sampler ${name} returned ${next instanceof Tensor ? `a tensor, ${next.dtype} [${next.shape.join(', ')}]` : next === null ? 'null' : typeof next} at step ${step}`;
    ensure(next instanceof Tensor && next.owner === this.engine.handle && !next.disposed, `${what}; a step function must return the next latent, made with ctx.engine`);
    ensure(next.dtype === 'f32' && next.shape.join() === x.shape.join(), `${what}; the latent is f32 [${x.shape.join(', ')}]`);
    return next;
  }

  #validate(o: GenerateOptions): ValidatedGenerate {
    ensure(o && typeof o === 'object', 'generateImage options must be an object');
    ensure(typeof o.prompt === 'string' && o.prompt.trim().length > 0, 'prompt must be a non-empty string');
    ensure(o.prompt.length <= MAX_PROMPT_CHARS, `prompt is ${o.prompt.length} characters; at most ${MAX_PROMPT_CHARS} are allowed`);
    const g = this.generator.config;
    const given = o.guidance ?? g.guidancePerGroup ?? g.guidanceScale;
    const guidance = typeof given === 'number' ? Array<number>(g.numGroups).fill(given) : Array.isArray(given) ? [...given] : [];
    ensure(guidance.length === g.numGroups && guidance.every((w) => typeof w === 'number' && Number.isFinite(w)),
      `guidance must be a finite number or ${g.numGroups} of them (one per expert group), got ${describe(given)}`);
    const seed = o.seed ?? 0;
    ensure(Number.isSafeInteger(seed) && seed >= 0, `seed must be a non-negative integer, got ${describe(seed)}`);
    const count = o.count ?? 1;
    ensure(Number.isInteger(count) && count >= 1 && count <= MAX_COUNT, `count must be an integer in [1, ${MAX_COUNT}], got ${describe(count)}`);
    ensure(this.#bytesFor(count) < os.totalmem() / 2, `count ${count} needs more memory than this machine has to spare; make fewer images per call`);
    const sampler = o.sampler ?? g.sampler;
    const step = typeof sampler === 'function' ? sampler : Object.hasOwn(STEP_FUNCTIONS, sampler) ? STEP_FUNCTIONS[sampler] : undefined;
    ensure(step, `sampler must be 'euler', 'heun' or a step function, got ${describe(sampler)}`);
    const samplerName = typeof sampler === 'function' ? (sampler.name ? `'${sampler.name}'` : '(a step function)') : `'${sampler}'`;
    const depth = o.depth ?? 'group';
    ensure(depth === 'group' || depth === 'full', `depth must be 'group' or 'full', got ${describe(depth)}`);
    let schedule: number[];
    if (o.schedule !== undefined) {
      ensure(o.steps === undefined && o.shift === undefined, 'give either schedule or steps/shift');
      schedule = checkSchedule(o.schedule);
    } else {
      const steps = o.steps ?? g.numSteps;
      ensure(Number.isInteger(steps) && steps >= 1 && steps <= MAX_STEPS, `steps must be an integer in [1, ${MAX_STEPS}], got ${describe(steps)}`);
      schedule = timeSchedule(steps, o.shift ?? g.timeShift);
    }
    // a batch costs its images' steps: no request may take more than the longest single image
    const steps = schedule.length - 1;
    ensure(count * steps <= MAX_STEPS, `count x steps must be at most ${MAX_STEPS}, got ${describe(count)} x ${steps}: make fewer images per call or take fewer steps`);
    const maxPromptTokens = o.maxPromptTokens ?? MAX_PROMPT_TOKENS;
    ensure(Number.isInteger(maxPromptTokens) && maxPromptTokens >= 1, `maxPromptTokens must be an integer >= 1, got ${describe(maxPromptTokens)}`);
    ensure(o.signal === undefined || o.signal instanceof AbortSignal, 'signal must be an AbortSignal');
    ensure(o.onProgress === undefined || typeof o.onProgress === 'function', 'onProgress must be a function');
    const previewEvery = o.previewEvery ?? 0;
    ensure(Number.isInteger(previewEvery) && previewEvery >= 0, `previewEvery must be an integer >= 1, got ${describe(o.previewEvery)}`);
    if (o.signal?.aborted) throw new LatteError('E_ABORTED', 'image generation was aborted', { cause: o.signal.reason });
    const program = typeof sampler === 'string' ? SAMPLER_PROGRAMS[sampler as 'euler' | 'heun'] : undefined;
    return { prompt: o.prompt, guidance, seed, count, step, program, samplerName, depth, schedule, maxPromptTokens, signal: o.signal, onProgress: o.onProgress, previewEvery };
  }

  /** A generous estimate of the engine memory one call needs (activations and the decoded images). */
  #bytesFor(count: number): number {
    const g = this.generator.config;
    const [h, w] = g.latentSize;
    const N = (h / g.patchSize) * (w / g.patchSize);
    const rows = 2 * count * N;
    const gen = rows * g.hiddenSize * 4 * 64 + 2 * count * N * (N + 512) * 4 * 16;
    const f = this.vae.config.factor;
    const vae = count * h * f * w * f * 4 * 1024;
    return gen + vae;
  }

  /**
   * Frees the model. By default waits for the requests in flight (drain); with `drop`, aborts them
   * (they reject E_ABORTED). Requests waiting for a slot, and all later ones, reject E_DISPOSED.
   */
  async dispose(options: { drop?: boolean } = {}): Promise<void> {
    const closed = new LatteError('E_DISPOSED', 'the model is being disposed');
    this.#scheduler.images.close(closed);
    this.#scheduler.answers.close(closed);
    if (options?.drop) this.#closing.abort(closed);
    await Promise.all(this.#inFlight);
    this.vae.dispose();
    this.generator.dispose();
    await this.vlm.dispose(); // the VLM was given the engine, so this frees only its weights
    if (!this.engine.disposed) await this.engine.dispose();
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
