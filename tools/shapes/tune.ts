/**
 * Picks a model's default sampling settings on a development prompt set (ShapesEval prompts drawn from
 * stream DEV_SEED, not the fixed evaluation set), so the figures `latte-flow eval` reports are not the
 * ones the defaults were tuned on. Prints ShapesEval overall per (steps, guidance, time shift).
 *
 *   node --import=tsx tools/shapes/tune.ts [model dir] [--limit 100] [--guidance 1.5,2,3,4,5 or 5/5/3/1,...] [--shift 1,2]
 *       [--steps 20,40] [--sampler euler] [--threads 2] [--wording template,heldout]
 * With several wordings (lib/shapes/evaluate.ts WORDINGS), each cell is their mean overall.
 */
import { LatteFlow } from '../../lib/index.ts';
import { evaluateShapes, type Wording } from '../../lib/shapes/evaluate.ts';
import { DEV_SEED } from '../../lib/shapes/world.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args.splice(i, 2)[1] : dflt;
};
const limit = Number(opt('limit', '100'));
// a/b/c/d: one weight per expert group
const guidances = opt('guidance', '1.5,2,3,4,5').split(',').map((g) => (g.includes('/') ? g.split('/').map(Number) : Number(g)));
const shifts = opt('shift', '1').split(',').map(Number);
const stepList = opt('steps', '').split(',').filter(Boolean).map(Number);
const threads = Number(opt('threads', '2'));
const sampler = opt('sampler', '') as '' | 'euler' | 'heun';
const wordings = opt('wording', 'template').split(',') as Wording[];
const model = args[0] ?? 'models/shapes';

const lf = await LatteFlow.load(model, { backend: 'cpu', threads });
console.log(`${model}: ShapesEval overall (single / relation) on ${limit} development prompts (stream ${DEV_SEED}), ${wordings.join(' + ')} wording${sampler ? `, ${sampler}` : ''}`);
console.log('| steps | guidance | ' + shifts.map((s) => `shift ${s}`).join(' | ') + ' |');
console.log('|---|---|' + '---|'.repeat(shifts.length));
for (const steps of stepList.length ? stepList : [lf.generator.config.numSteps])
  for (const guidance of guidances) {
    const cells: string[] = [];
    for (const shift of shifts) {
      const rs: Awaited<ReturnType<typeof evaluateShapes>>[] = [];
      for (const wording of wordings) rs.push(await evaluateShapes(lf, { limit, steps, guidance, shift, wording, promptSeed: DEV_SEED, ...(sampler ? { sampler } : {}) }));
      const mean = (k: 'overall' | 'single' | 'relation') => rs.reduce((a, r) => a + r[k], 0) / rs.length;
      cells.push(`${mean('overall').toFixed(3)} (${mean('single').toFixed(2)} / ${mean('relation').toFixed(2)})`);
    }
    console.log(`| ${steps} | ${Array.isArray(guidance) ? guidance.join('/') : guidance} | ${cells.join(' | ')} |`);
  }
await lf.dispose();
