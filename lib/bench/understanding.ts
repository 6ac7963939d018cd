/**
 * The understanding measures' workloads and our side of them, on the random Qwen2-VL-2B-shaped
 * checkpoint: image encode (vision tower + merger), prefill (text tokens, last logits) and decode (ms per
 * greedy token, the next step enqueued before each read, as answer() runs it). The Python peer times the
 * same workloads: the parameters it gets come from vlmWorkload(), so both sides never drift apart.
 */
import { preprocessImage, Qwen2VL, smartResize, type BackendRequest } from '../index.js';
import { MAX_PIXELS, MERGE, MIN_PIXELS, PATCH } from './random-qwen2vl.js';
import type { BenchContext, Timed } from './types.js';
import { nowMs } from './stats.js';

export interface VlmWorkload {
  /** Square image side in pixels (448: 1024 patches, 256 merged tokens). */
  image: number;
  prefillTokens: number;
  decodePrompt: number;
  decodeTokens: number;
}

export const vlmWorkload = (quick: boolean): VlmWorkload => (quick ? { image: 112, prefillTokens: 32, decodePrompt: 16, decodeTokens: 4 } : { image: 448, prefillTokens: 256, decodePrompt: 64, decodeTokens: 16 });

/** Text ids valid in any vocabulary the random writer accepts (all < 250). */
export const textIds = (S: number, seed: number): Int32Array => Int32Array.from({ length: S }, (_, i) => (seed * 7919 + i * 104729) % 250);

/** Text positions 0..S-1 on the three M-RoPE axes. */
const textPositions = (S: number): Int32Array => new Int32Array(3 * S).map((_, i) => i % S);

/** The patch grid [t, h, w] of the square test image on the random checkpoint (as preprocessImage makes it). */
export function vlmGrid(side: number): [number, number, number] {
  const [h, w] = smartResize(side, side, PATCH * MERGE, MIN_PIXELS, MAX_PIXELS);
  return [1, h / PATCH, w / PATCH];
}

/** A deterministic RGB picture (its values do not change the work). */
export const testImage = (side: number) => ({ width: side, height: side, data: new Uint8Array(side * side * 3).map((_, i) => (i * 131) % 251) });

/**
 * ms per greedy token after the text prompt `ids` (positions 0..S-1), `n` tokens, the next step enqueued
 * before each read (as answer() does), on a sequence of `capacity` (none: a cache that grows).
 */
export async function decodeMsPerToken(m: Qwen2VL, ids: Int32Array, n: number, capacity?: number): Promise<number> {
  const S = ids.length;
  const seq = m.newSequence(capacity);
  const logits = m.prefill(seq, ids, [], textPositions(S));
  let tok = m.sample(seq, logits);
  logits.dispose(); // its memory returns once the draw ran
  await tok.read();
  const t0 = nowMs();
  for (let i = 0; i < n; i++) {
    const next = m.decode(seq, tok);
    await tok.read();
    tok.dispose();
    tok = next;
  }
  await tok.read();
  const ms = (nowMs() - t0) / n;
  tok.dispose();
  seq.release();
  return ms;
}

/** The weights a side computes with: a measure's own (the decode pairings with llama.cpp) or --dtype. */
export type Weights = 'f32' | 'bf16' | 'q8';

async function loadVlm(ctx: BenchContext, backend: BackendRequest, weights: Weights = ctx.options.dtype): Promise<Qwen2VL> {
  const dir = await ctx.randomVlm();
  return Qwen2VL.load(dir, { backend, threads: ctx.options.threads, weights });
}

/**
 * Our greedy tokens after the text prompt `ids`: the first (from the prefill) and `n` decoded. What a
 * peer's tokens are checked against before it is timed.
 */
export async function oursGreedy(ctx: BenchContext, weights: Weights, ids: Int32Array, n: number): Promise<number[]> {
  const m = await loadVlm(ctx, 'cpu', weights);
  try {
    const seq = m.newSequence();
    const logits = m.prefill(seq, ids, [], textPositions(ids.length));
    let tok = m.sample(seq, logits);
    logits.dispose();
    const out: number[] = [];
    for (let i = 0; i <= n; i++) {
      const next = i < n ? m.decode(seq, tok) : undefined;
      out.push(Number((await tok.read())[0]));
      tok.dispose();
      if (next) tok = next;
    }
    seq.release();
    return out;
  } finally {
    await m.dispose();
  }
}

const side = (m: Qwen2VL, run: () => Promise<number>, note: string): Timed => ({ run, note, teardown: () => m.dispose() });

export async function oursEncode(ctx: BenchContext, backend: BackendRequest): Promise<Timed> {
  const m = await loadVlm(ctx, backend);
  const w = vlmWorkload(ctx.options.quick);
  const pv = preprocessImage(testImage(w.image), m.preprocessor);
  const pixels = m.engine.tensor(pv.data, pv.shape);
  return {
    ...side(m, async () => {
      const t0 = nowMs();
      const emb = m.encodeImage(pixels, pv.grid);
      await emb.read();
      const ms = nowMs() - t0;
      emb.dispose();
      return ms;
    }, `${w.image}x${w.image}, grid ${pv.grid.join('x')}`),
    teardown: async () => {
      pixels.dispose();
      await m.dispose();
    },
  };
}

export async function oursPrefill(ctx: BenchContext, backend: BackendRequest): Promise<Timed> {
  const m = await loadVlm(ctx, backend);
  const S = vlmWorkload(ctx.options.quick).prefillTokens;
  const ids = textIds(S, 1);
  return side(m, async () => {
    const seq = m.newSequence();
    const t0 = nowMs();
    const logits = m.prefill(seq, ids, [], textPositions(S));
    await logits.read();
    const ms = nowMs() - t0;
    logits.dispose();
    seq.release();
    return ms;
  }, `${S} tokens`);
}

/** Decode with --dtype's weights, or with `weights` (the pairings with llama.cpp's GGUF types). */
export const oursDecode = (weights?: Weights) => async (ctx: BenchContext, backend: BackendRequest): Promise<Timed> => {
  const m = await loadVlm(ctx, backend, weights);
  const w = vlmWorkload(ctx.options.quick);
  const ids = textIds(w.decodePrompt, 2);
  const note = `${weights ? `${weights} weights, ` : ''}${w.decodeTokens} tokens after ${w.decodePrompt}`;
  return side(m, () => decodeMsPerToken(m, ids, w.decodeTokens, w.decodePrompt + w.decodeTokens), note);
};
