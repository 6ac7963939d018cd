/**
 * The onnxruntime-node peer: the decoder-layer measures, the same layer and weights as ours built as an
 * ONNX graph in memory (lib/bench/decoder-layer.ts). Optional: imported dynamically, so a machine
 * without it gets "not installed" in the report and nothing else changes.
 */
import type * as Ort from 'onnxruntime-node';
import { buildOnnxLayer, QWEN2_VL_2B } from './decoder-layer.js';
import { layerCase, layerInputs, layerWeights } from './layer.js';
import { packageVersion } from './machine.js';
import { nowMs } from './stats.js';
import type { BenchContext, Measure, Peer, Timed } from './types.js';

export async function onnxruntimePeer(): Promise<Peer> {
  let ort: typeof Ort | undefined;
  let why = '';
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    // absent is the ordinary case; anything else (a binary that does not load) is worth its message
    why = (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' ? '' : ` (${(e as Error).message.split('\n')[0]})`;
  }
  return {
    id: 'onnxruntime',
    title: 'onnxruntime-node',
    status: ort ? { available: true, version: `onnxruntime-node ${packageVersion('onnxruntime-node') ?? '?'}` } : { available: false, reason: `not installed${why}`, install: 'npm install onnxruntime-node' },
    async prepare(measure: Measure, ctx: BenchContext): Promise<Timed> {
      if (!ort) throw new Error('onnxruntime-node is not installed');
      if (!measure.id.startsWith('layer.')) throw new Error(`onnxruntime has no ${measure.id}`);
      const c = layerCase(measure.id, ctx.options.quick);
      const { hidden: D, kvHeads: G, headDim: HD } = QWEN2_VL_2B;
      // ORT's own best settings for a CPU run: all graph optimizations, our thread count, no inter-op pool
      const session = await ort.InferenceSession.create(buildOnnxLayer(layerWeights(ctx), c.P > 0), {
        intraOpNumThreads: ctx.options.threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
      });
      const inp = layerInputs(c);
      const feeds: Record<string, Ort.Tensor> = {
        x: new ort.Tensor('float32', inp.x, [1, c.S, D]),
        cos: new ort.Tensor('float32', inp.cos, [1, c.S, 1, HD]),
        sin: new ort.Tensor('float32', inp.sin, [1, c.S, 1, HD]),
        mask: new ort.Tensor('float32', inp.mask, [c.S, c.P + c.S]),
      };
      if (c.P) {
        feeds.past_k = new ort.Tensor('float32', inp.pk, [1, c.P, G, HD]);
        feeds.past_v = new ort.Tensor('float32', inp.pv, [1, c.P, G, HD]);
      }
      return {
        run: async () => {
          const t0 = nowMs();
          await session.run(feeds); // outputs come back as JS arrays, as ours are read back
          return nowMs() - t0;
        },
        teardown: () => session.release(),
        note: 'f32, graph optimizations all',
      };
    },
    async close() {},
  };
}
