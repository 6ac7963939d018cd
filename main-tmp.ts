import { LatteFlow } from './lib/index.ts';
import { scorePrompt, type EvalPrompt } from './lib/shapes/detect.ts';
const lf = await LatteFlow.load(process.argv[2] ?? 'models/shapes', { backend: 'cpu', threads: Number(process.argv[3] ?? 1) });
const prompt: EvalPrompt = { caption: 'a red circle to the left of a blue square', kind: 'two', objects: [{ shape: 'circle', colour: 'red' }, { shape: 'square', colour: 'blue' }], relation: 'to the left of' } as EvalPrompt;
let pass = 0;
const out: string[] = [];
for (let seed = 0; seed < 16; seed++) {
  const [img] = await lf.generateImage({ prompt: prompt.caption, seed });
  const s = scorePrompt(prompt, img.data);
  if (s.relation) pass++;
  out.push(`${seed}:${s.relation ? 'ok' : 'FAIL(' + s.objects.map((o) => `${o.colour} ${o.shape}`).join('+') + ')'}`);
}
console.log(`${pass}/16`, out.join(' '));
await lf.dispose();
