/**
 * The whole native contract in one place: what the addon (bindings/) exports, typed.
 * Everything here is implemented in C++; lib/ code never reaches the addon any other way.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { LatteError } from './errors.js';

export type DTypeName = 'f32' | 'bf16' | 'f16' | 'i32';
export type MaskName = 'none' | 'causal' | 'prefix_causal';
export type GeluName = 'quick' | 'tanh' | 'erf';

/** Attributes of any op; each op reads the ones it documents (see native/core/ops.h). */
export interface NativeAttrs {
  eps?: number;
  scale?: number;
  theta?: number;
  mask?: MaskName;
  prefixLen?: number;
  imageCol0?: number;
  returnLogits?: boolean;
  sections?: number[];
  restart?: boolean;
  stride?: number;
  padding?: number;
  groups?: number;
  factor?: number;
  gelu?: GeluName;
  channels?: boolean;
  dtype?: DTypeName | 'q8';
  axis?: number;
  start?: number;
  alpha?: number;
  beta?: number;
  headDim?: number;
  length?: number;
  shape?: number[];
  perm?: number[];
  seed?: number | bigint;
  offset?: number | bigint;
  step?: number | bigint;
  temperature?: number;
  topK?: number;
  topP?: number;
}

/**
 * The ops JavaScript may call: native/core/op_list.h's rows, in its order, less the in-place ones
 * (internal to the engine's models). test/op-list.test.ts checks this against the addon's `opNames()`.
 */
export const OP_NAMES = [
  'pack_linear', 'linear', 'embedding', 'rms_norm', 'layer_norm', 'rope', 'attention', 'softmax', 'silu', 'relu', 'tanh',
  'gelu', 'add', 'mul', 'axpby', 'relu_linear_attention', 'swiglu', 'modulate', 'gated_add', 'convert', 'concat', 'permute',
  'slice', 'noise', 'zeros', 'advance', 'sample', 'conv2d', 'pixel_shuffle', 'upsample_nearest',
] as const;
export type OpName = (typeof OP_NAMES)[number];

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DTypeName | 'q8'; // q8: a packed weight only (packLinear)
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativeStats {
  bytesInUse: number;
  peakBytes: number;
  opsEnqueued: number;
  opsRun: number;
  pending: number;
  /** Programs (recorded op sequences: a generator step) recorded, replayed, and replayed as one captured CUDA graph. */
  programsRecorded: number;
  replays: number;
  capturedLaunches: number;
  /** Programs the backend could not capture (they then run op by op). */
  captureFailures: number;
}

export interface NativeEngine {
  readonly info: { backend: 'cpu' | 'cuda'; reason: string; threads: number };
  readonly disposed: boolean;
  /** Copies `data` now; the write into engine memory happens on the stream. */
  upload(data: ArrayBufferView, shape: number[], dtype: DTypeName): NativeTensor;
  /** Enqueues an op and returns its outputs at once (shapes known); throws on bad operands. */
  op(name: OpName, inputs: (NativeTensor | null)[], attrs?: NativeAttrs): NativeTensor[];
  reshape(t: NativeTensor, shape: number[]): NativeTensor;
  /** Loads a checkpoint tensor (copied from the mapping on the stream); `as` converts its dtype. */
  load(ck: NativeCheckpoint, name: string, as?: DTypeName | null): NativeTensor;
  read(t: NativeTensor): Promise<ArrayBuffer>;
  fence(): Promise<void>;
  dropPending(): number;
  dispose(drop: boolean): Promise<void>;
  stats(): NativeStats;
}

export interface NativeCheckpoint {
  names(): string[];
  /** dtype as written in the file (F32, BF16, F16, F64, I64, I32, ...). */
  info(name: string): { dtype: string; shape: number[]; file: string };
  metadata(): Record<string, string>;
  close(): void;
}

/** The config fields the TypeScript side needs, as the engine parsed and checked them. */
export interface NativeQwen2VLConfig {
  hiddenSize: number;
  layers: number;
  vocabSize: number;
  maxPositions: number;
  imageTokenId: number;
  visionStartTokenId: number;
  mergeSize: number;
  patchSize: number;
  temporalPatchSize: number;
  visionDepth: number;
}

/** One conversation inside the engine: its KV cache, where its next token sits, how it draws tokens. */
export interface NativeSequence {
  /** Tokens cached. */
  readonly length: number;
  /** The M-RoPE position of the next token (all three axes): the prefill's largest position + 1, then one more per decoded token. */
  readonly position: number;
  release(): void;
  /** Per-layer K/V [1, P, G, d] computed elsewhere (a fixture, a benchmark's random prompt). */
  assign(ks: NativeTensor[], vs: NativeTensor[]): void;
}

/** How a sequence draws its tokens (the sample op's attributes). */
export interface NativeSampling {
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number | bigint;
}

export interface NativeQwen2VL {
  readonly config: NativeQwen2VLConfig;
  /** pixels f32 [t*h*w, C*T*P*P], row r being grid patch (rows[r], cols[r]) of patchPositions = [rows..., cols...] -> merged image embeddings [t*h*w/merge^2, D] */
  encodeImage(pixels: NativeTensor, t: number, h: number, w: number, patchPositions: Int32Array): NativeTensor;
  /** A new conversation; with a capacity its keys/values are preallocated for that many tokens; sampling: how it draws (default greedy). */
  newSequence(capacity?: number, sampling?: NativeSampling): NativeSequence;
  /** true (default): decode on a reserved sequence replays one recorded step; false: op by op. */
  usePrograms(on: boolean): void;
  /** Embeds ids (images spliced in at image-token runs), runs the decoder at M-RoPE positions [3, S] -> logits [1, V] ([S, V] with allRows). */
  prefill(seq: NativeSequence, ids: Int32Array, images: NativeTensor[], positions: Int32Array, allRows?: boolean): NativeTensor;
  /** The sequence's next token id (i32 [1]) drawn from logits [1, V]. */
  sample(seq: NativeSequence, logits: NativeTensor): NativeTensor;
  /** One token (an i32 [1] engine tensor) at the sequence's next position -> the next token id drawn from its logits (and those logits [1, V]). */
  decode(seq: NativeSequence, token: NativeTensor, withLogits?: false): NativeTensor;
  decode(seq: NativeSequence, token: NativeTensor, withLogits: true): [NativeTensor, NativeTensor];
  /** One decode step for several reserved sequences: tokens i32 [M], one each -> each one's next token, i32 [M]. */
  decodeBatch(seqs: NativeSequence[], tokens: NativeTensor): NativeTensor;
  /** A text prompt's K/V at positions [3, S] for the first `layers` decoder layers (no LM head) -> the last hidden state. */
  encodePrompt(seq: NativeSequence, ids: Int32Array, positions: Int32Array, layers: number): NativeTensor;
  dispose(): void;
}

/** The generation stream's config fields the TypeScript side needs, as the engine parsed and checked them. */
export interface NativeGeneratorConfig {
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

/** One request's share of a batched velocity: its `images` latents at its own time and guidance. */
export interface NativeVelocityRequest {
  t: number;
  cond: NativeSequence;
  null: NativeSequence | null;
  guidance: number;
  images: number;
}

export interface NativeGenerator {
  readonly config: NativeGeneratorConfig;
  /** The guided velocity of layers [first, last) at time t (null branch only with `nul`). */
  velocityLayers(x: NativeTensor, t: number, first: number, last: number, cond: NativeSequence, nul: NativeSequence | null, guidance: number): NativeTensor;
  /** Several requests' latents (x: theirs, concatenated in order) in one forward of layers [first, last). */
  velocityBatch(x: NativeTensor, first: number, last: number, requests: NativeVelocityRequest[]): NativeTensor;
  /** E_ARG unless a prompt of `tokens` tokens leaves room for the image tokens below `maxPositions`. */
  checkPrompt(tokens: number, maxPositions: number): void;
  usePrograms(on: boolean): void;
  releasePrograms(cond: NativeSequence, nul: NativeSequence | null): void;
  dispose(): void;
}

/** The DC-AE config fields the TypeScript side needs, as the engine parsed and checked them. */
export interface NativeDcaeConfig {
  /** Channels of the latent the decoder takes. */
  latentChannels: number;
  /** Image side / latent side: 2^(stages - 1). */
  factor: number;
  /** decode() divides the latent by this. */
  scalingFactor: number;
  /** Channels of the image (config in_channels, usually 3). */
  outChannels: number;
}

export interface NativeDcae {
  readonly config: NativeDcaeConfig;
  /** latent f32 [B, latentChannels, h, w] as the flow makes it -> image f32 [B, outChannels, h*factor, w*factor] */
  decode(latent: NativeTensor): NativeTensor;
  dispose(): void;
}

declare const parsedConfig: unique symbol;
/** A config.json the engine read and checked (`readConfig`), opaque; only its own model class takes it. */
export interface NativeParsedConfig<Model extends string> {
  readonly [parsedConfig]: Model;
}

/**
 * A model class of the addon: `readConfig(path)` reads and checks config.json (E_BAD_CONFIG) once,
 * in C++; the constructor takes its result, after the engine and the checkpoint.
 */
export interface NativeModelClass<Model extends string, T, Rest extends unknown[]> {
  new (engine: NativeEngine, ck: NativeCheckpoint, config: NativeParsedConfig<Model>, ...rest: Rest): T;
  readConfig(path: string): NativeParsedConfig<Model>;
}

export interface NativeBackendInfo {
  compiled: string[];
  cuda: { compiled: boolean; available: boolean; reason: string; device: string };
  cpu: {
    avx2: boolean;
    fma: boolean;
    avx512f: boolean;
    avx512bf16: boolean;
    amxBf16: boolean;
    amxPermitted: boolean;
    cores: number;
    gemm: string;
  };
}

export interface NativeAddon {
  NativeEngine: new (opts: { backend: string; threads: number }) => NativeEngine;
  NativeTensor: unknown;
  NativeSequence: new () => NativeSequence;
  NativeQwen2VL: NativeModelClass<'qwen2vl', NativeQwen2VL, [weights: 'f32' | 'bf16' | 'q8']>;
  NativeGenerator: NativeModelClass<'generator', NativeGenerator, [weights: 'f32' | 'bf16' | 'q8']>;
  NativeDcae: NativeModelClass<'dcae', NativeDcae, []>;
  backendInfo(): NativeBackendInfo;
  /** Memory-maps a .safetensors file, a directory of them, or an *.index.json; checks every header. */
  openCheckpoint(path: string): NativeCheckpoint;
  /** The ops the engine offers to JavaScript, in native/core/op_list.h's order (OP_NAMES). */
  opNames(): string[];
}

let addon: NativeAddon | undefined;

/** Loads the addon once: prebuilds/<platform>/ in a package, build/Release in a checkout. */
export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  try {
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    addon = load(root);
  } catch (e) {
    throw new LatteError(
      'E_NATIVE_LOAD',
      `latte-flow: cannot load the native engine (${(e as Error).message}). ` +
        'Prebuilt binaries cover linux-x64 with glibc >= 2.36; elsewhere run `npm run build` in the package.',
      { cause: e },
    );
  }
  return addon;
}
