/**
 * The autoencoder's ceiling: ShapesEval of its reconstructions of the ShapesEval prompts' own images
 * (written by train_shapes.py --stages ae). No generator can score above this.
 *
 *   node --import=tsx tools/shapes/ae-ceiling.ts [models/shapes/ae_recon_eval.safetensors]
 */
import { Engine, openCheckpoint } from '../../lib/index.ts';
import { shapesEval } from '../../lib/shapes/detect.ts';
import { shapesEvalPrompts } from '../../lib/shapes/world.ts';

const file = process.argv[2] ?? 'models/shapes/ae_recon_eval.safetensors';
const ck = openCheckpoint(file);
const e = new Engine({ backend: 'cpu', threads: 1 });
const read = async (name: string) => Uint8Array.from((await e.load(ck, name).read()) as Int32Array);
const [rec, orig] = [await read('recon'), await read('original')];
await e.dispose();
const prompts = shapesEvalPrompts();
const n = 64 * 64 * 3;
// the file holds the prompts' examples in stream order; prompt p's example index is p.index
const order = prompts.map((p) => p.index).sort((a, b) => a - b);
const images = (all: Uint8Array) => prompts.map((p) => {
  const at = order.indexOf(p.index);
  return all.subarray(at * n, (at + 1) * n);
});
for (const [name, all] of [['originals', orig], ['reconstructions', rec]] as const) {
  const r = shapesEval(prompts, images(all));
  console.log(`${name}: single ${r.single.toFixed(3)} colour ${r.colour.toFixed(3)} position ${r.position.toFixed(3)} count ${r.count.toFixed(3)} relation ${r.relation.toFixed(3)} overall ${r.overall.toFixed(3)}`);
}
