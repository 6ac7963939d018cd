/**
 * The run's shared state: the options and the random 2B-shaped checkpoints, written into one temporary
 * folder on first use (a filter that needs none writes none) and deleted by dispose(), also on Ctrl-C.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REAL_SCALE, writeRandomGenerator } from './random-generator.js';
import { writeRandomQwen2VL } from './random-qwen2vl.js';
import { nowMs } from './stats.js';
import type { BenchContext, BenchOptions } from './types.js';

/** The generator: K = 4 groups of layers; --layers N gives N per group (each group's step runs N). */
const GEN_GROUPS = 4;

export function createContext(options: BenchOptions, log: (line: string) => void): BenchContext & { dispose(): void; tmp(): string | undefined } {
  let tmp: string | undefined;
  const folder = () => (tmp ??= fs.mkdtempSync(path.join(os.tmpdir(), 'latte-flow-bench-')));
  const once = <T>(f: () => Promise<T>): (() => Promise<T>) => {
    let p: Promise<T> | undefined;
    return () => (p ??= f());
  };
  const timed = async (what: string, f: () => Promise<unknown>) => {
    const t0 = nowMs();
    log(`writing ${what}`);
    await f();
    log(`  written in ${((nowMs() - t0) / 1e3).toFixed(1)} s`);
  };
  // quick (tests): a small vocabulary, so the checkpoint is tens of MB instead of ~0.9 GB
  const vocabSize = options.quick ? 4096 : undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    dispose();
    process.kill(process.pid, sig); // the default action, now that the handler is gone
  };
  const dispose = () => {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    tmp = undefined;
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  return {
    options,
    log,
    randomVlm: once(async () => {
      const dir = path.join(folder(), 'vlm');
      const L = options.layers;
      await timed(`a random Qwen2-VL-2B-shaped checkpoint (${L} decoder layers, ${L} vision blocks${vocabSize ? `, vocabulary ${vocabSize}` : ''}, ${options.dtype}) to ${dir}`, () =>
        writeRandomQwen2VL(dir, { layers: L, visionDepth: L, dtype: options.dtype, vocabSize }),
      );
      return dir;
    }),
    randomGenerator: once(async () => {
      const dir = path.join(folder(), 'generator');
      const layers = GEN_GROUPS * options.layers;
      await timed(`a random generator at 2B widths (${layers} layers, K = ${GEN_GROUPS}, ${options.dtype}) to ${dir}`, () =>
        writeRandomGenerator(dir, { ...REAL_SCALE, layers, groups: GEN_GROUPS, dtype: options.dtype }),
      );
      return { dir, layers, groups: GEN_GROUPS };
    }),
    tempFile: (name) => path.join(folder(), name),
    dispose,
    tmp: () => tmp,
  };
}
