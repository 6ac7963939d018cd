/**
 * The pictures in the README: what the shipped model draws for a few prompts (seeds 0-3, the model's
 * default steps and guidance), with each image's ShapesEval verdict, one row per prompt.
 *
 *   node --import=tsx tools/shapes/readme-images.ts [models/shapes] [docs/images]
 * Writes <dir>/main.png (the README's main command: seed 0), <dir>/grid.png, and prints a table.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encode } from 'fast-png';
import { LatteFlow } from '../../lib/index.ts';
import { scorePrompt, type EvalPrompt } from '../../lib/shapes/detect.ts';

const model = process.argv[2] ?? 'models/shapes';
const out = process.argv[3] ?? 'docs/images';
// written out with what ShapesEval checks (the world's caption grammar: docs/shapes-world.md)
const PROMPTS: EvalPrompt[] = [
  { caption: 'a red circle to the left of a blue square', kind: 'two', objects: [{ shape: 'circle', colour: 'red' }, { shape: 'square', colour: 'blue' }], relation: 'to the left of' },
  { caption: 'a large green triangle on the left', kind: 'one', objects: [{ shape: 'triangle', colour: 'green', size: 'large', place: 'left' }] },
  { caption: 'a small yellow square in the center', kind: 'one', objects: [{ shape: 'square', colour: 'yellow', size: 'small', place: 'center' }] },
  { caption: 'a purple circle above a yellow triangle', kind: 'two', objects: [{ shape: 'circle', colour: 'purple' }, { shape: 'triangle', colour: 'yellow' }], relation: 'above' },
];
const SEEDS = 4;
const SCALE = 2; // nearest-neighbour upscale, so 64x64 pictures are visible on a page

const lf = await LatteFlow.load(model, { backend: 'cpu', threads: 2 });
const W = 64 * SEEDS * SCALE;
const H = 64 * PROMPTS.length * SCALE;
const grid = new Uint8Array(W * H * 3).fill(255);
console.log('| prompt | ' + Array.from({ length: SEEDS }, (_, s) => `seed ${s}`).join(' | ') + ' |');
console.log('|---|' + '---|'.repeat(SEEDS));
for (const [row, p] of PROMPTS.entries()) {
  const prompt = p.caption;
  const verdicts: string[] = [];
  for (let s = 0; s < SEEDS; s++) {
    const [img] = await lf.generateImage({ prompt, seed: s });
    if (row === 0 && s === 0) fs.writeFileSync(path.join(out, 'main.png'), img.toPNG());
    const score = scorePrompt(p, img.data);
    verdicts.push(score.kind === 'one' ? (score.single && score.colour && score.position ? 'pass' : 'fail') : score.relation ? 'pass' : 'fail');
    for (let y = 0; y < 64 * SCALE; y++)
      for (let x = 0; x < 64 * SCALE; x++)
        for (let c = 0; c < 3; c++)
          grid[(((row * 64 * SCALE + y) * W) + s * 64 * SCALE + x) * 3 + c] = img.data[((Math.floor(y / SCALE)) * 64 + Math.floor(x / SCALE)) * 3 + c];
  }
  console.log(`| ${prompt} | ${verdicts.join(' | ')} |`);
}
fs.writeFileSync(path.join(out, 'grid.png'), encode({ width: W, height: H, data: grid, channels: 3, depth: 8 }));
await lf.dispose();
