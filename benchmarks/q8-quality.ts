/**
 * q8 weights on the shipped shapes-world model (issue 21): the VQA questions of `latte-flow eval`
 * answered greedily with weights 'f32' and 'q8' (fraction of identical answers, and each one's
 * accuracy), and ShapesEval on images the q8 generator draws against the f32 one.
 *
 *   node --import=tsx benchmarks/q8-quality.ts [--count 200] [--images 40]
 */
import { LatteFlow } from '../lib/index.ts';
import { DEFAULT_MODEL } from '../lib/cli.ts';
import { evaluateShapes } from '../lib/shapes/evaluate.ts';
import { examples, IMAGE_SIZE } from '../lib/shapes/world.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const count = opt('--count', 200);
const images = opt('--images', 40);
const norm = (s: string) => s.trim().toLowerCase().replace(/[.!]+$/, '');

const exs = examples(777777, 0, count); // the eval's questions (evaluateVqa)
const answers: Record<string, string[]> = {};
const shapes: Record<string, number> = {};
for (const weights of ['f32', 'q8'] as const) {
  const lf = await LatteFlow.load(DEFAULT_MODEL, { backend: 'cpu', threads: 2, weights });
  answers[weights] = [];
  for (let i = 0; i < exs.length; i++) {
    const [question] = exs[i].qa[i % exs[i].qa.length];
    answers[weights].push(await lf.answer({ image: { width: IMAGE_SIZE, height: IMAGE_SIZE, data: exs[i].image }, question, maxTokens: 24 }));
  }
  if (images > 0) shapes[weights] = (await evaluateShapes(lf, { limit: images })).overall;
  await lf.dispose();
}
const same = answers.f32.filter((a, i) => a === answers.q8[i]).length;
const acc = (w: string) => answers[w].filter((a, i) => norm(a) === norm(exs[i].qa[i % exs[i].qa.length][1])).length / count;
console.log(`VQA greedy answers identical (q8 vs f32): ${same} of ${count} (${((100 * same) / count).toFixed(1)}%)`);
console.log(`VQA accuracy: f32 ${(100 * acc('f32')).toFixed(1)}%, q8 ${(100 * acc('q8')).toFixed(1)}%`);
if (images > 0) console.log(`ShapesEval overall on ${images} images: f32 ${shapes.f32.toFixed(3)}, q8 ${shapes.q8.toFixed(3)}`);
