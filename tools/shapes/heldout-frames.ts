// temporary: ShapesEval held-out prompts scored per frame (not committed)
import { LatteFlow } from '../lib/index.ts';
import { scorePrompt } from '../lib/shapes/detect.ts';
import { wordPrompt } from '../lib/shapes/evaluate.ts';
import { shapesEvalPrompts } from '../lib/shapes/world.ts';
const [model, seedArg, lim] = process.argv.slice(2);
const seed = seedArg ? Number(seedArg) : undefined;
const lf = await LatteFlow.load(model, { backend: 'cpu', threads: 1 });
const all = shapesEvalPrompts(seed).slice(0, Number(lim ?? 200));
const stats: Record<string, [number, number]> = {};
let i = 0;
for (const p of all) {
  const w = wordPrompt(p, 'heldout', seed);
  const c = w.caption.toLowerCase().replace(/\.$/, '');
  const frame = p.kind === 'one' ? (c.includes(' there is ') ? '{place} there is {np}' : '{np} is {place}') : (c.includes(' there is ') ? '{rel} {b} there is {a}' : '{a} is {rel} {b}');
  const [img] = await lf.generateImage({ prompt: w.caption, seed: i++ });
  const s = scorePrompt(w, img.data) as any;
  const ok = p.kind === 'one' ? (s.single && s.colour && s.position ? 1 : 0) : (s.relation ? 1 : 0);
  const st = (stats[frame] ??= [0, 0]); st[0] += ok; st[1]++;
}
console.log(stats);
lf.dispose?.();
