/**
 * The shapes `latte-flow bench` is built from. A measure times one thing on our engine; the same thing
 * may be timed by built-in baselines (e.g. the K = 1 twin) and by peers (other runtimes, each optional).
 * Every side of a measure is a Timed: run() does one repetition and returns its milliseconds, timed by
 * the side itself (so a peer in another process reports its own clock, not our pipe's latency).
 */
export type BenchBackend = 'cpu' | 'cuda';
export type PeerId = 'pytorch' | 'onnxruntime' | 'llama.cpp';

export interface Timed {
  run(): Promise<number>;
  teardown(): Promise<void>;
  /** What this side ran, when it differs from the measure's title (e.g. "f32 weights"). */
  note?: string;
}

/** Options of one run, as the command line gave them. */
export interface BenchOptions {
  threads: number;
  quick: boolean;
  /** Decoder layers (and vision blocks) of the random 2B-shaped checkpoint. */
  layers: number;
  reps: number;
  warmup: number;
  dtype: 'f32' | 'bf16';
}

/** What the measures share: options, and the random checkpoints, written once and only when needed. */
export interface BenchContext {
  options: BenchOptions;
  /** A random Qwen2-VL-2B-shaped checkpoint (options.layers decoder layers and vision blocks). */
  randomVlm(): Promise<string>;
  /** A random generation stream at Qwen2-VL-2B widths, K = 4 expert groups. */
  randomGenerator(): Promise<{ dir: string; layers: number; groups: number }>;
  /** A path for `name` in the run's temporary folder (deleted with it). */
  tempFile(name: string): string;
  /** Progress for slow setup work (stderr). */
  log(line: string): void;
}

export interface Measure {
  /** Stable id, used by --filter and in bench-report.json: "<group>.<name>". */
  id: string;
  title: string;
  /** What one repetition times, in a sentence (the report prints it). */
  what: string;
  unit: 'ms' | 'ms/token' | 'ms/step';
  /** Our backends it runs on (CUDA only where the engine reports a device). */
  backends: BenchBackend[];
  setup(ctx: BenchContext, backend: BenchBackend): Promise<Timed>;
  /** Built-in baselines, always available: name -> setup (e.g. "K=1 vanilla"). */
  baselines?: Record<string, (ctx: BenchContext, backend: BenchBackend) => Promise<Timed>>;
  /** Peers that can time the same thing (on the CPU pass). */
  peers?: PeerId[];
  /** The weights every side computes with, when the measure fixes them (else --dtype). */
  weights?: 'f32' | 'bf16' | 'q8';
}

/** Whether a peer can run here, and if not why and how to get it. */
export type PeerStatus = { available: true; version: string; detail?: string } | { available: false; reason: string; install: string };

export interface Peer {
  id: PeerId;
  title: string;
  status: PeerStatus;
  /** The peer's side of a measure; throws to skip it for this measure (the reason goes in the report). */
  prepare(measure: Measure, ctx: BenchContext): Promise<Timed>;
  close(): Promise<void>;
}

/** One side's figures for one measure. */
export interface SideResult {
  name: string;
  kind: 'ours' | 'baseline' | 'peer';
  samples: number[];
  min?: number;
  median?: number;
  /** This side's median / ours (baselines and peers): > 1 means ours is faster. */
  ratio?: number;
  note?: string;
  error?: string;
}

export interface MeasureResult {
  id: string;
  title: string;
  what: string;
  unit: string;
  backend: BenchBackend;
  /** The peers this measure can use (present or not), for the report's "not installed" cells. */
  peers: PeerId[];
  sides: SideResult[];
  seconds: number;
}
