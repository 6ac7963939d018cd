/**
 * One Qwen2-VL-2B-shaped decoder layer, op by op on our engine (f32 weights), against the same layer in
 * onnxruntime (lib/bench/decoder-layer.ts builds both from one set of weights). prefill: S tokens, no
 * past; decode: 1 token after P past tokens (the KV cache concatenated, as a model does).
 */
import { Engine, type BackendRequest } from '../index.js';
import { causalMask, cosSin, disposeLayer, engineLayer, makeWeights, QWEN2_VL_2B, uploadLayer, type LayerWeights } from './decoder-layer.js';
import { nowMs, randn } from './stats.js';
import type { BenchContext, Timed } from './types.js';

export interface LayerCase {
  S: number;
  P: number;
}

export const layerCase = (id: string, quick: boolean): LayerCase => (id === 'layer.prefill' ? { S: quick ? 32 : 256, P: 0 } : { S: 1, P: quick ? 32 : 256 });

/** The inputs both sides feed: x [1,S,D], past K/V [1,P,G,HD]. */
export function layerInputs(c: LayerCase) {
  const { hidden: D, kvHeads: G, headDim: HD } = QWEN2_VL_2B;
  return {
    x: randn(c.S * D, 1000 + c.S),
    pk: randn(c.P * G * HD, 2000 + c.P),
    pv: randn(c.P * G * HD, 3000 + c.P),
    ...cosSin(QWEN2_VL_2B, c.P, c.S),
    mask: causalMask(c.S, c.P),
  };
}

/** The layer's weights, made once per run (46 M values: about a second) and shared by every side. */
const weightsByCtx = new WeakMap<BenchContext, LayerWeights>();
export function layerWeights(ctx: BenchContext): LayerWeights {
  let w = weightsByCtx.get(ctx);
  if (!w) weightsByCtx.set(ctx, (w = makeWeights(QWEN2_VL_2B)));
  return w;
}

export const oursLayer = (id: string) => async (ctx: BenchContext, backend: BackendRequest): Promise<Timed> => {
  const c = layerCase(id, ctx.options.quick);
  const { hidden: D, kvHeads: G, headDim: HD } = QWEN2_VL_2B;
  const e = new Engine({ backend, threads: ctx.options.threads });
  const params = uploadLayer(e, layerWeights(ctx), ['f32']);
  const inp = layerInputs(c);
  const pos = e.tensor(Int32Array.from({ length: c.S }, (_, i) => c.P + i), [1, 1, c.S], 'i32');
  const past = c.P ? { k: e.tensor(inp.pk, [1, c.P, G, HD]), v: e.tensor(inp.pv, [1, c.P, G, HD]) } : null;
  return {
    run: async () => {
      const t0 = nowMs();
      const xt = e.tensor(inp.x, [1, c.S, D]);
      const r = await engineLayer(e, params.f32, xt, pos, past);
      await r.out.readFloat32();
      const ms = nowMs() - t0;
      for (const t of [...r.temps, r.out, xt]) t.dispose();
      return ms;
    },
    teardown: async () => {
      pos.dispose();
      past?.k.dispose();
      past?.v.dispose();
      disposeLayer(params);
      await e.dispose();
    },
    note: `f32, ${c.P ? `1 token after ${c.P}` : `${c.S} tokens`}`,
  };
};
