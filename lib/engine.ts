/**
 * Engine: one backend and one stream. Every op method enqueues work and returns at once with the
 * output tensor (its shape known); results come back through `tensor.read()` and `fence()`.
 * An error raised while an op runs surfaces, with its code, at the next read or fence.
 */
import os from 'node:os';
import { describe, ensure, LatteError, native, nativeAsync } from './errors.js';
import { loadAddon, type DTypeName, type GeluName, type MaskName, type NativeAttrs, type NativeEngine, type NativeStats, type NativeTensor, type OpName } from './native.js';
import { Tensor, type HostArray } from './tensor.js';
import { Checkpoint } from './checkpoint.js';

export type BackendRequest = 'auto' | 'cpu' | 'cuda';

export interface EngineOptions {
  /** 'auto' (default; env LATTE_BACKEND overrides), 'cpu' or 'cuda' (throws E_BACKEND_UNAVAILABLE if unusable). */
  backend?: BackendRequest;
  /** CPU threads for this engine's kernels: 0 (default) = all cores; more than the cores is E_ARG. */
  threads?: number;
}

export interface AttentionOptions {
  mask?: MaskName;
  /** prefix_causal: keys [0, prefixLen) are causal text; later tokens attend to all keys. */
  prefixLen?: number;
  /** First key column of the image block (receives the residual / returns its logits). */
  imageCol0?: number;
  /** TCRA residual [B,H,Sq,Ni] and gate [B,H]: logits[:, image cols] += gate * residual. */
  residual?: Tensor;
  gate?: Tensor;
  /** Also return the post-residual image-key logits [B,H,Sq,Ni] for the next layer. */
  returnLogits?: boolean;
  /** Default 1/sqrt(head_dim). */
  scale?: number;
  /**
   * A preallocated K/V cache: i32 [1], the keys cached before these queries, read when the op runs.
   * Only keys [0, past + Sq) exist; the rest of k/v is never read. No image block with it. A `past`
   * that does not fit k/v is E_INDEX on the CPU; the CUDA kernel clamps it to fit (it runs inside
   * captured graphs, where nothing can throw).
   */
  past?: Tensor;
  /**
   * Rows whose prompts were padded to one length: i32 [B], row b's real prompt length; its keys
   * [promptLen[b], imageCol0) are padding and never attended to. Needs imageCol0.
   */
  promptLen?: Tensor;
  /**
   * 'bf16' allows bf16 rounding of q, k, v and the probabilities for speed: the CUDA backend then runs
   * its tensor-core kernel (head dim a multiple of 16 up to 128, 16 or more queries). Default 'f32';
   * the CPU computes f32 either way.
   */
  precision?: 'f32' | 'bf16';
}

export interface RopeOptions {
  theta?: number;
  /** The head_dim/2 frequencies split per position axis, e.g. Qwen2-VL M-RoPE [16, 24, 24]. */
  sections?: number[];
  /** Each section restarts its frequency index (the vision tower's 2-D RoPE). */
  restart?: boolean;
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  groups?: number;
}

const BACKENDS: readonly BackendRequest[] = ['auto', 'cpu', 'cuda'];
const HOST_DTYPE: Record<DTypeName, (new (n: number) => HostArray) | undefined> = {
  f32: Float32Array,
  i32: Int32Array,
  bf16: Uint16Array,
  f16: Uint16Array,
};

export class Engine implements AsyncDisposable {
  readonly #native: NativeEngine;
  #sink: ((t: Tensor) => void) | null = null;

  constructor(options: EngineOptions = {}) {
    const backend = options.backend ?? 'auto';
    ensure(BACKENDS.includes(backend), `backend must be one of ${BACKENDS.join(', ')}, got ${describe(backend)}`);
    const threads = options.threads ?? 0;
    // more threads than cores only time-slice against each other: 1024 on 2 cores made a 23 ms run 7.8 s
    const cores = os.availableParallelism();
    ensure(Number.isInteger(threads) && threads >= 0 && threads <= cores, `threads must be an integer in [0, ${cores}] (this machine has ${cores} cores; 0 = all of them), got ${describe(threads)}`);
    const { NativeEngine } = loadAddon();
    // 0 resolves here, by the same count the cap uses (it honours CPU affinity and cgroup limits,
    // which the native default std::thread::hardware_concurrency does not)
    this.#native = native(() => new NativeEngine({ backend, threads: threads || cores }));
  }

  /** The backend this engine runs on and why it was chosen. */
  get backend(): { name: 'cpu' | 'cuda'; reason: string; threads: number } {
    const i = this.#native.info;
    return { name: i.backend, reason: i.reason, threads: i.threads };
  }
  get disposed(): boolean {
    return this.#native.disposed;
  }
  /** @internal the native engine, for model objects built on it */
  get handle(): NativeEngine {
    return this.#native;
  }
  /** @internal wraps a native tensor of this engine */
  wrap(h: NativeTensor): Tensor {
    return this.#wrap(h);
  }
  /** @internal this engine's handle of `t` (E_ARG for another engine's tensor) */
  own(t: Tensor): NativeTensor {
    return this.#own(t);
  }
  stats(): NativeStats {
    return this.#native.stats();
  }
  /**
   * @internal Runs `f` (synchronous), handing `sink` every tensor this engine makes meanwhile: lets
   * generateImage free what a user step function made, even when it throws.
   */
  collect<T>(f: () => T, sink: (t: Tensor) => void): T {
    const outer = this.#sink;
    this.#sink = sink;
    try {
      return f();
    } finally {
      this.#sink = outer;
    }
  }

  /** Copies host data into a new engine tensor (bf16/f16 as raw Uint16 bits). */
  tensor(data: HostArray | number[], shape: number[], dtype: DTypeName = 'f32'): Tensor {
    const Host = HOST_DTYPE[dtype];
    ensure(Host, `unknown dtype ${describe(dtype)}`, 'E_DTYPE');
    const arr = Array.isArray(data) ? new Host(data.length).map((_, i) => data[i]) : data;
    ensure(arr instanceof Host, `dtype ${dtype} needs a ${Host.name}`, 'E_DTYPE');
    return this.#wrap(native(() => this.#native.upload(arr, shape, dtype)));
  }

  /** Loads tensor `name` of a checkpoint, as `dtype` (default: its own; integers load as i32). */
  load(ck: Checkpoint, name: string, dtype?: DTypeName): Tensor {
    ensure(ck instanceof Checkpoint, 'expected a Checkpoint from openCheckpoint()');
    return this.#wrap(native(() => this.#native.load(ck.handle, name, dtype ?? null)));
  }

  reshape(t: Tensor, shape: number[]): Tensor {
    return this.#wrap(native(() => this.#native.reshape(this.#own(t), shape)));
  }

  /** Resolves when every op enqueued before it has run; rejects with a held stream error. */
  fence(): Promise<void> {
    return nativeAsync(() => this.#native.fence());
  }

  /** Skips everything enqueued but not started; pending reads/fences reject with E_ABORTED. */
  dropPending(): number {
    return native(() => this.#native.dropPending());
  }

  /** Drains the queue (or drops it with {drop: true}), frees all engine memory, stops the worker. */
  async dispose(options: { drop?: boolean } = {}): Promise<void> {
    await nativeAsync(() => this.#native.dispose(options.drop ?? false));
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  // ---- ops ---------------------------------------------------------------------------------
  /**
   * Packs an nn.Linear weight [out, in] once into the backend's layout: compute f32, bf16, or q8
   * (quantised per block of 32 along `in`, docs/quantization.md).
   */
  packLinear(w: Tensor, compute: 'f32' | 'bf16' | 'q8' = 'f32'): Tensor {
    return this.#op1('pack_linear', [w], { dtype: compute });
  }
  /** y = x W^T + b, W [out, in] plain or packed. */
  linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
    return this.#op1('linear', [x, w, b ?? null]);
  }
  embedding(table: Tensor, ids: Tensor): Tensor {
    return this.#op1('embedding', [table, ids]);
  }
  rmsNorm(x: Tensor, w: Tensor | null, opts: { eps?: number; bias?: Tensor; channels?: boolean } = {}): Tensor {
    return this.#op1('rms_norm', [x, w, opts.bias ?? null], { eps: opts.eps, channels: opts.channels });
  }
  layerNorm(x: Tensor, w: Tensor | null, b: Tensor | null, eps = 1e-5): Tensor {
    return this.#op1('layer_norm', [x, w, b], { eps });
  }
  /** x [B,S,H,d], positions i32 [axes,B,S]. */
  rope(x: Tensor, positions: Tensor, opts: RopeOptions = {}): Tensor {
    return this.#op1('rope', [x, positions], opts);
  }
  /** q [B,Sq,H,d], k/v [B,Skv,G,d] -> out [B,Sq,H,d] (and logits [B,H,Sq,Ni] with returnLogits). */
  attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): { out: Tensor; logits?: Tensor } {
    const { residual, gate, past, promptLen, ...attrs } = opts;
    const outs = this.#op('attention', [q, k, v, residual ?? null, gate ?? null, past ?? null, promptLen ?? null], attrs);
    return { out: outs[0], logits: outs[1] };
  }
  softmax(x: Tensor): Tensor {
    return this.#op1('softmax', [x]);
  }
  silu(x: Tensor): Tensor {
    return this.#op1('silu', [x]);
  }
  relu(x: Tensor): Tensor {
    return this.#op1('relu', [x]);
  }
  tanh(x: Tensor): Tensor {
    return this.#op1('tanh', [x]);
  }
  gelu(x: Tensor, mode: GeluName = 'tanh'): Tensor {
    return this.#op1('gelu', [x], { gelu: mode });
  }
  /** a + b, b broadcast over a's leading dims. */
  add(a: Tensor, b: Tensor): Tensor {
    return this.#op1('add', [a, b]);
  }
  mul(a: Tensor, b: Tensor): Tensor {
    return this.#op1('mul', [a, b]);
  }
  /** alpha * a + beta * b (same shapes): CFG combine, Euler / Heun updates. */
  axpby(alpha: number, a: Tensor, beta: number, b: Tensor): Tensor {
    return this.#op1('axpby', [a, b], { alpha, beta });
  }
  /** DC-AE's ReLU linear attention: qkv [B, heads*3*d, H, W] (per head consecutive q, k, v) -> [B, heads*d, H, W]. */
  reluLinearAttention(qkv: Tensor, headDim: number, eps = 1e-15): Tensor {
    return this.#op1('relu_linear_attention', [qkv], { headDim, eps });
  }
  /** silu(gate) * up */
  swiglu(gate: Tensor, up: Tensor): Tensor {
    return this.#op1('swiglu', [gate, up]);
  }
  /** x [B,S,D] * (1 + scale[B,D]) + shift[B,D] */
  modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
    return this.#op1('modulate', [x, shift, scale]);
  }
  /** h + gate[B,D] * x */
  gatedAdd(h: Tensor, gate: Tensor, x: Tensor): Tensor {
    return this.#op1('gated_add', [h, gate, x]);
  }
  convert(x: Tensor, dtype: DTypeName): Tensor {
    return this.#op1('convert', [x], { dtype });
  }
  /**
   * Seeded standard-normal noise (docs/reference.md#noise): element i (row-major) depends only on
   * (seed, offset + i), identical on every backend and in the PyTorch reference.
   */
  noise(shape: number[], seed: number | bigint, offset: number | bigint = 0): Tensor {
    return this.#op1('noise', [], { shape, seed, offset });
  }
  /** A tensor of zeros (f32). */
  zeros(shape: number[]): Tensor {
    return this.#op1('zeros', [], { shape });
  }
  /**
   * i32 [1]: at + n, computed once `after` has been (the engine's way to step a position or a cache
   * length without a round trip to JavaScript).
   */
  advance(at: Tensor, after: Tensor, n: number): Tensor {
    return this.#op1('advance', [at, after], { length: n });
  }
  /**
   * The next token per row of logits [..., V] -> i32 ids (docs/reference.md#token-sampling): greedy
   * at temperature 0, else temperature / topK / topP and a draw with the seeded uniform(seed, step).
   */
  sample(logits: Tensor, opts: { temperature?: number; topK?: number; topP?: number; seed?: number | bigint; step?: number | bigint } = {}): Tensor {
    return this.#op1('sample', [logits], opts);
  }
  /** Reorders dimensions like torch.permute: output dim i is input dim perm[i]. */
  permute(x: Tensor, perm: number[]): Tensor {
    return this.#op1('permute', [x], { perm });
  }
  /** x[..., start:start+length, ...] along `axis` (a copy). */
  slice(x: Tensor, axis: number, start: number, length: number): Tensor {
    return this.#op1('slice', [x], { axis, start, length });
  }
  /** Joins a and b along `axis` (negative counts from the end). */
  concat(a: Tensor, b: Tensor, axis: number): Tensor {
    return this.#op1('concat', [a, b], { axis });
  }
  /** x [N,Cin,H,W], w [Cout,Cin/groups,kh,kw] */
  conv2d(x: Tensor, w: Tensor, b: Tensor | null, opts: Conv2dOptions = {}): Tensor {
    return this.#op1('conv2d', [x, w, b], opts);
  }
  pixelShuffle(x: Tensor, factor: number): Tensor {
    return this.#op1('pixel_shuffle', [x], { factor });
  }
  upsampleNearest(x: Tensor, factor: number): Tensor {
    return this.#op1('upsample_nearest', [x], { factor });
  }

  // ---- plumbing ----------------------------------------------------------------------------
  #own(t: Tensor): NativeTensor {
    ensure(t instanceof Tensor, 'expected a Tensor');
    if (t.owner !== this.#native) throw new LatteError('E_ARG', 'tensor belongs to another engine');
    return t.handle;
  }
  #wrap(h: NativeTensor): Tensor {
    const t = new Tensor(this.#native, h);
    this.#sink?.(t);
    return t;
  }
  #op(name: OpName, inputs: (Tensor | null)[], attrs: NativeAttrs = {}): Tensor[] {
    const handles = inputs.map((t) => (t === null ? null : this.#own(t)));
    // attributes left undefined take the op's defaults on the native side
    return native(() => this.#native.op(name, handles, attrs)).map((h) => this.#wrap(h));
  }
  #op1(name: OpName, inputs: (Tensor | null)[], attrs: NativeAttrs = {}): Tensor {
    return this.#op(name, inputs, attrs)[0];
  }
}
