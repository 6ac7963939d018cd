/**
 * ShapesEval's verdict on one 64x64 PNG for a two-object prompt of the world's grammar
 * ("a red circle to the left of a blue square"). Exit 0 when accepted, 1 when not.
 *
 *   node --import=tsx tools/shapes/score-png.ts out.png "a red circle to the left of a blue square"
 */
import fs from 'node:fs';
import { decode } from 'fast-png';
import { scorePrompt, type EvalPrompt } from '../../lib/shapes/detect.ts';
import { RELATIONS } from '../../lib/shapes/world.ts';

const [file, caption] = process.argv.slice(2);
const relation = RELATIONS.find((r) => caption?.includes(` ${r} `));
const m = relation && caption.match(new RegExp(`^a (\\w+) (\\w+) ${relation} a (\\w+) (\\w+)$`));
if (!file || !m) {
  console.error('usage: score-png.ts FILE "a <colour> <shape> <relation> a <colour> <shape>"');
  process.exit(2);
}
const png = decode(fs.readFileSync(file));
if (png.width !== 64 || png.height !== 64 || png.channels !== 3) {
  console.error(`${file}: ${png.width}x${png.height}x${png.channels}, not a 64x64 RGB picture`);
  process.exit(1);
}
const prompt = { caption, kind: 'two', objects: [{ colour: m[1], shape: m[2] }, { colour: m[3], shape: m[4] }], relation } as EvalPrompt;
const score = scorePrompt(prompt, png.data as Uint8Array);
const seen = score.objects.map((o) => `${o.colour} ${o.shape}`).join(' + ') || 'nothing';
console.log(`ShapesEval ${score.relation ? 'accepts' : 'rejects'} ${file} for "${caption}" (found ${seen})`);
process.exit(score.relation ? 0 : 1);
