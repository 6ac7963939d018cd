/**
 * The measures of `latte-flow bench`, in report order. Adding one is one entry here: an id
 * ("<group>.<name>", what --filter matches), a title, what one repetition times, its unit, our
 * backends, setup (our side) and optionally baselines (built in) and peers (other runtimes).
 *
 * Planned entries, from other branches (add them here):
 *   - 'vision.attention': attention at the vision tower's shapes (1024 patches, 16 heads of 80), ours
 *     only, CPU and CUDA.
 */
import type { BackendRequest } from '../index.js';
import { openGenerator, stepMs } from './generation.js';
import { oursLayer } from './layer.js';
import { answer, image, step, VANILLA_MODEL } from './shipped.js';
import { SHIPPED_MODEL } from '../index.js';
import { GGUF_TYPE } from './peer-llama.js';
import type { BenchContext, Measure, Timed } from './types.js';
import { oursDecode, oursEncode, oursPrefill } from './understanding.js';

const BOTH: Measure['backends'] = ['cpu', 'cuda'];

/**
 * One guided step of the random 2B-width generator: one expert group's layers (ours), or every layer
 * (the full-depth baseline); the group rotates per repetition, as sampling walks the groups.
 */
const genStep = (full: boolean) => async (ctx: BenchContext, backend: BackendRequest): Promise<Timed> => {
  const g = await ctx.randomGenerator();
  const m = await openGenerator(g.dir, { threads: ctx.options.threads, weights: ctx.options.dtype, backend });
  const { latentChannels, latentSize } = m.gen.config;
  const x = m.e.noise([1, latentChannels, ...latentSize], 1);
  const per = g.layers / g.groups;
  let k = 0;
  return {
    run: () => {
      k = (k + 1) % g.groups;
      return full ? stepMs(m, x, (k + 0.5) / g.groups, 0, g.layers) : stepMs(m, x, (k + 0.5) / g.groups, k * per, (k + 1) * per);
    },
    teardown: async () => {
      x.dispose();
      await m.dispose();
    },
    note: full ? `${g.layers} layers` : `${per} of ${g.layers} layers (K = ${g.groups})`,
  };
};

export const MEASURES: Measure[] = [
  {
    id: 'shipped.answer',
    title: 'Shipped model: answer a question',
    what: 'one answer (at most 16 tokens) about a 64x64 shapes picture, preprocessing included',
    unit: 'ms',
    backends: BOTH,
    setup: answer,
  },
  {
    id: 'shipped.image',
    title: 'Shipped model: image end to end',
    what: 'one 64x64 image from a prompt: prompt encoding, sampling (20 steps), VAE decode; vs the K = 1 twin',
    unit: 'ms',
    backends: BOTH,
    setup: image(SHIPPED_MODEL),
    baselines: { 'K=1 vanilla': image(VANILLA_MODEL) },
  },
  {
    id: 'shipped.step',
    title: 'Shipped model: expert-group step vs full depth',
    what: 'one sampling step, K = 4 (one expert group of layers) vs the K = 1 twin (every layer)',
    unit: 'ms/step',
    backends: BOTH,
    setup: step(SHIPPED_MODEL),
    baselines: { 'K=1 vanilla': step(VANILLA_MODEL) },
  },
  {
    id: 'gen.step',
    title: 'Generation at 2B widths: group step vs full depth',
    what: 'one guided (CFG) step over 64 latent tokens of a random K = 4 generator at Qwen2-VL-2B widths',
    unit: 'ms/step',
    backends: BOTH,
    setup: genStep(false),
    baselines: { 'full depth': genStep(true) },
  },
  {
    id: 'vlm.encode',
    title: 'Understanding at 2B shapes: image encode',
    what: 'the vision tower and merger on a 448x448 image (1024 patches), random 2B-shaped checkpoint',
    unit: 'ms',
    backends: BOTH,
    setup: oursEncode,
    peers: ['pytorch'],
  },
  {
    id: 'vlm.prefill',
    title: 'Understanding at 2B shapes: prefill',
    what: '256 text tokens through the decoder, last logits read back',
    unit: 'ms',
    backends: BOTH,
    setup: oursPrefill,
    peers: ['pytorch'],
  },
  {
    id: 'vlm.decode',
    title: 'Understanding at 2B shapes: decode',
    what: 'greedy decode, per token, after a 64-token prompt (decoder + LM head over 151936 tokens)',
    unit: 'ms/token',
    backends: BOTH,
    setup: oursDecode(),
    peers: ['pytorch'],
  },
  // ours against llama.cpp on the same decoder and weights (a GGUF of the random checkpoint, written
  // for each pairing): one entry per weight type, whatever --dtype the checkpoint has
  ...(['f32', 'bf16', 'q8'] as const).map(
    (weights): Measure => ({
      id: `vlm.decode-${weights}`,
      title: `Understanding at 2B shapes: decode, ${weights} weights vs llama.cpp ${GGUF_TYPE[weights]}`,
      what: `greedy decode, per token, after a 64-token prompt, ${weights} weights (llama.cpp: ${GGUF_TYPE[weights]} GGUF of the same decoder)`,
      unit: 'ms/token',
      backends: BOTH,
      setup: oursDecode(weights),
      peers: ['llama.cpp'],
      weights,
    }),
  ),
  {
    id: 'layer.prefill',
    title: 'One 2B decoder layer: prefill',
    what: 'one Qwen2-VL-2B-shaped decoder layer (f32) on 256 tokens, op by op, output read back',
    unit: 'ms',
    backends: BOTH,
    setup: oursLayer('layer.prefill'),
    peers: ['onnxruntime'],
  },
  {
    id: 'layer.decode',
    title: 'One 2B decoder layer: decode',
    what: 'the same layer on 1 token after 256 cached ones (KV concatenated)',
    unit: 'ms',
    backends: BOTH,
    setup: oursLayer('layer.decode'),
    peers: ['onnxruntime'],
  },
];

/**
 * The measures --filter selects: comma-separated ids or id prefixes ("vlm" takes vlm.*; "vlm.decode"
 * one). Returns the unknown terms too, so the command can refuse them before anything runs.
 */
export function selectMeasures(filter: string | undefined): { measures: Measure[]; unknown: string[] } {
  if (!filter) return { measures: MEASURES, unknown: [] };
  const terms = filter.split(',').map((s) => s.trim()).filter(Boolean);
  const hit = (m: Measure, t: string) => m.id === t || m.id.startsWith(`${t}.`);
  return { measures: MEASURES.filter((m) => terms.some((t) => hit(m, t))), unknown: terms.filter((t) => !MEASURES.some((m) => hit(m, t))) };
}
