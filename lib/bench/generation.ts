/**
 * A random generation stream on an engine, ready to step: prompt K/V are random tensors assigned to
 * sequences (16 tokens; the null prompt 4), so no VLM is needed. Shared by `latte-flow bench` (group
 * step vs full depth at 2B widths) and benchmarks/generation.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Engine, GenerationStream, type BackendRequest, type Tensor } from '../index.js';
import { loadAddon, type NativeSequence } from '../native.js';
import { writeRandomGenerator, type RandomGeneratorOptions } from './random-generator.js';
import { nowMs, randn } from './stats.js';

export interface SteppableGenerator {
  e: Engine;
  gen: GenerationStream;
  cond: NativeSequence;
  nul: NativeSequence;
  dispose(): Promise<void>;
}

/** Random prompt K/V for every layer (P tokens) assigned to a new sequence: conditioning without a VLM. */
export function randomPrompt(e: Engine, shape: { layers: number; hidden: number; heads: number; kvHeads: number }, P: number, seed: number): NativeSequence {
  const d = shape.hidden / shape.heads;
  const G = shape.kvHeads;
  const ks = [];
  const vs = [];
  for (let l = 0; l < shape.layers; l++) {
    ks.push(e.own(e.tensor(randn(P * G * d, seed + 2 * l), [1, P, G, d])));
    vs.push(e.own(e.tensor(randn(P * G * d, seed + 2 * l + 1), [1, P, G, d])));
  }
  const seq = new (loadAddon().NativeSequence)();
  seq.assign(ks, vs);
  return seq;
}

/** Loads the generator in `dir` (written first when `write` is given) with random prompts. */
export async function openGenerator(dir: string, o: { threads: number; weights: 'f32' | 'bf16'; backend?: BackendRequest; write?: RandomGeneratorOptions }): Promise<SteppableGenerator> {
  if (o.write) await writeRandomGenerator(dir, o.write);
  const e = new Engine({ backend: o.backend ?? 'cpu', threads: o.threads });
  const gen = GenerationStream.load(dir, e, o.weights);
  await e.fence();
  // the heads are not in the engine's config: they come from the checkpoint's config.json
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { num_attention_heads: number; num_key_value_heads: number };
  const shape = { layers: gen.config.numLayers, hidden: gen.config.hiddenSize, heads: cfg.num_attention_heads, kvHeads: cfg.num_key_value_heads };
  const cond = randomPrompt(e, shape, 16, 100);
  const nul = randomPrompt(e, shape, 4, 200);
  return {
    e,
    gen,
    cond,
    nul,
    dispose: async () => {
      cond.release();
      nul.release();
      gen.dispose();
      await e.dispose();
    },
  };
}

/** One Euler step over layers [first, last) with CFG, waited for: ms. */
export async function stepMs(m: SteppableGenerator, x: Tensor, t: number, first: number, last: number): Promise<number> {
  const t0 = nowMs();
  const v = m.gen.velocityLayers(x, t, first, last, m.cond, m.nul, 2);
  const y = m.e.axpby(1, x, 0.025, v);
  await m.e.fence();
  const ms = nowMs() - t0;
  v.dispose();
  y.dispose();
  return ms;
}
