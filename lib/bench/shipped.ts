/**
 * Measures on the shipped shapes-world model (models/shapes, K = 4 expert groups) and its vanilla twin
 * (models/shapes-vanilla, K = 1: every step runs the full depth): what a user of the package runs.
 */
import path from 'node:path';
import { LatteFlow, SHIPPED_MODEL, type BackendRequest } from '../index.js';
import { example } from '../shapes/world.js';
import { nowMs } from './stats.js';
import type { BenchContext, Timed } from './types.js';

export const VANILLA_MODEL = path.join(SHIPPED_MODEL, '..', 'shapes-vanilla');
const PROMPT = 'a red circle to the left of a blue square';
const steps = (ctx: BenchContext): number => (ctx.options.quick ? 4 : 20);

async function load(dir: string, ctx: BenchContext, backend: BackendRequest): Promise<LatteFlow> {
  return LatteFlow.load(dir, { backend, threads: ctx.options.threads });
}

async function imageMs(lf: LatteFlow, n: number, seed: number): Promise<number> {
  const t0 = nowMs();
  await lf.generateImage({ prompt: PROMPT, steps: n, seed });
  return nowMs() - t0;
}

/** One answer of at most 16 tokens about a shapes-world picture (image preprocessing included). */
export async function answer(ctx: BenchContext, backend: BackendRequest): Promise<Timed> {
  const lf = await load(SHIPPED_MODEL, ctx, backend);
  const ex = example(31337, 0);
  return {
    run: async () => {
      const t0 = nowMs();
      await lf.answer({ image: { width: 64, height: 64, data: ex.image }, question: ex.qa[0][0], maxTokens: 16 });
      return nowMs() - t0;
    },
    teardown: () => lf.dispose(),
    note: `"${ex.qa[0][0]}"`,
  };
}

/** A whole image: prompt encoding, the sampling loop, the VAE decode and the pixels. */
export const image = (dir: string) => async (ctx: BenchContext, backend: BackendRequest): Promise<Timed> => {
  const lf = await load(dir, ctx, backend);
  let seed = 0;
  return { run: () => imageMs(lf, steps(ctx), seed++), teardown: () => lf.dispose(), note: `${steps(ctx)} steps` };
};

/**
 * One sampling step: the time between the first and the last step's progress report over the steps
 * between (the engine keeps one step queued ahead, so consecutive reports are one step apart). The
 * prompt encoding and the VAE decode fall outside. On K = 4 a step runs one expert group, on K = 1
 * every layer. (An image at 2n steps minus one at n was tried first: on a busy machine the difference of
 * two noisy times came out near zero or negative.)
 */
export const step = (dir: string) => async (ctx: BenchContext, backend: BackendRequest): Promise<Timed> => {
  const lf = await load(dir, ctx, backend);
  const n = steps(ctx);
  let seed = 0;
  return {
    run: async () => {
      const at: number[] = [];
      await lf.generateImage({ prompt: PROMPT, steps: n, seed: seed++, onProgress: () => void at.push(nowMs()) });
      return (at[at.length - 1] - at[0]) / (at.length - 1);
    },
    teardown: () => lf.dispose(),
    note: `steps 2-${n} of ${n}`,
  };
};
