/**
 * ShapesEval's held-out wording, scored per held-out caption frame (docs/shapes-world.md, "Held-out
 * split"): which of the frames a model has learnt to read. A one-shape prompt counts when its image has
 * exactly one object of the right shape, colour and place; a two-shape prompt when the relation holds.
 *
 *   node --import=tsx tools/shapes/heldout-frames.ts MODEL_DIR [PROMPT_SEED=515151 (the development set)] [LIMIT=200]
 */
import { LatteFlow } from '../../lib/index.ts';
import { scorePrompt } from '../../lib/shapes/detect.ts';
import { wordPrompt } from '../../lib/shapes/evaluate.ts';
import { shapesEvalPrompts } from '../../lib/shapes/world.ts';

const [model, seedArg = '515151', limitArg = '200'] = process.argv.slice(2);
const seed = Number(seedArg);
const limit = Number(limitArg);
if (!model || !Number.isSafeInteger(seed) || seed < 0 || !Number.isSafeInteger(limit) || limit < 1) {
  console.error('usage: heldout-frames.ts MODEL_DIR [PROMPT_SEED: an integer >= 0] [LIMIT: an integer >= 1]');
  process.exit(2);
}
const lf = await LatteFlow.load(model, { backend: 'cpu', threads: 1 });
const tally: Record<string, [right: number, asked: number]> = {};
let i = 0;
for (const p of shapesEvalPrompts(seed).slice(0, limit)) {
  const worded = wordPrompt(p, 'heldout', seed);
  const text = ` ${worded.caption.toLowerCase().replace(/\.$/, '')} `;
  const opens = text.includes(' there is ');
  const frame = p.kind === 'one' ? (opens ? '{place} there is {np}' : '{np} is {place}') : opens ? '{rel} {b} there is {a}' : '{a} is {rel} {b}';
  const [img] = await lf.generateImage({ prompt: worded.caption, seed: i++ });
  const s = scorePrompt(worded, img.data);
  const right = p.kind === 'one' ? Boolean(s.single && s.colour && s.position) : Boolean(s.relation);
  const t = (tally[frame] ??= [0, 0]);
  t[0] += Number(right);
  t[1]++;
}
for (const [frame, [right, asked]] of Object.entries(tally)) console.log(`${frame}: ${right} of ${asked}`);
lf.dispose();
