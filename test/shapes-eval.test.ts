// The engine evaluation of a shapes-world model (lib/shapes/evaluate.ts) on the shipped model, small:
// ShapesEval over the fixed or a development prompt set, and VQA with its per-question-kind counts.
import test from 'ava';
import { LatteFlow } from '../lib/index.ts';
import { DEFAULT_MODEL } from '../lib/cli.ts';
import { evaluateShapes, evaluateVqa, questionKind, rightAnswers, wordPrompt } from '../lib/shapes/evaluate.ts';
import { scorePrompt } from '../lib/shapes/detect.ts';
import { CONVERSE } from '../lib/shapes/language.ts';
import { DEV_SEED, EVAL_SEED, examples, shapesEvalPrompts } from '../lib/shapes/world.ts';

test('a development prompt set is of the same make as the fixed one, and different', (t) => {
  const fixed = shapesEvalPrompts();
  const dev = shapesEvalPrompts(DEV_SEED);
  t.deepEqual(shapesEvalPrompts(EVAL_SEED), fixed);
  t.is(dev.length, 200);
  t.deepEqual(dev.map((p) => p.kind), fixed.map((p) => p.kind));
  const same = dev.filter((p, i) => p.caption === fixed[i].caption).length;
  t.true(same < 20, `${same} of 200 captions coincide`);
  t.is(shapesEvalPrompts(DEV_SEED, 3).length, 6);
});

test('question kinds follow the world\'s templates', (t) => {
  t.is(questionKind('what colour is the circle?'), 'colour');
  t.is(questionKind('what shape is the red object?'), 'shape');
  t.is(questionKind('how many shapes are there?'), 'count');
  t.is(questionKind('where is the square?'), 'where');
  t.is(questionKind('is there a blue triangle?'), 'exists');
  t.is(questionKind('describe the image.'), 'describe');
});

test('a two-shape description is also right in the converse order, which is the same picture', (t) => {
  let twos = 0;
  for (const ex of examples(DEV_SEED, 0, 60)) {
    const describe = ex.qa.find(([q]) => questionKind(q) === 'describe')!;
    const right = rightAnswers(ex, describe[1], 'describe');
    t.is(right[0], ex.caption);
    for (const [q, a] of ex.qa.filter(([q]) => questionKind(q) !== 'describe')) t.deepEqual(rightAnswers(ex, a, questionKind(q)), [a]);
    if (ex.kind === 'one') {
      t.deepEqual(right, [ex.caption]);
      continue;
    }
    twos++;
    const [a, b] = ex.objects;
    const rel = CONVERSE[ex.relation!];
    t.is(right[1], `a ${b.colour} ${b.shape} ${rel} a ${a.colour} ${a.shape}`);
    // the detector finds the converse sentence true of the very image the caption was drawn for
    const converse = { caption: right[1], kind: 'two' as const, objects: [b, a].map(({ shape, colour }) => ({ shape, colour })), relation: rel };
    t.true(scorePrompt(converse, ex.image).relation, right[1]);
  }
  t.true(twos >= 20);
});

test('ShapesEval and VQA reports on the shipped model', async (t) => {
  const lf = await LatteFlow.load(DEFAULT_MODEL, { backend: 'cpu', threads: 2 });
  t.teardown(() => lf.dispose());
  const a = await evaluateShapes(lf, { limit: 4 });
  t.is(a.prompts, 4);
  t.is(a.perPrompt.length, 4);
  t.true(a.overall >= 0 && a.overall <= 1);
  const dev = await evaluateShapes(lf, { limit: 4, promptSeed: DEV_SEED, steps: 6, guidance: 2, shift: 2 });
  t.is(dev.prompts, 4);
  await t.throwsAsync(evaluateShapes(lf, { promptSeed: -1 }), { code: 'E_ARG' });
  await t.throwsAsync(evaluateShapes(lf, { limit: 1, wording: 'casual' as never }), { code: 'E_ARG' });
  await t.throwsAsync(evaluateShapes(lf, { limit: 0 }), { code: 'E_ARG' });
  const v = await evaluateVqa(lf, { count: 18, blanks: 1 });
  t.is(v.questions, 18);
  const kinds = Object.values(v.byKind);
  t.is(kinds.reduce((n, k) => n + k.questions, 0), 18 + 6);
  t.is(kinds.reduce((n, k) => n + k.right, 0), Math.round(v.accuracy * 18) + v.blank.right);
  t.true(Number.isInteger(v.converse) && v.converse >= 0 && v.converse <= v.byKind.describe!.right);
  t.is(v.blank.questions, 6);
  t.true(v.byKind.count!.questions > 0 && v.byKind.describe!.questions > 0);
  t.is(v.byKind.leftright, undefined, 'the template wording has no relation questions');
  const h = await evaluateVqa(lf, { count: 24, blanks: 0, wording: 'heldout' });
  t.is(h.wording, 'heldout');
  t.true((h.byKind.leftright?.questions ?? 0) + (h.byKind.abovebelow?.questions ?? 0) > 0, 'held-out wording asks relation questions');
  await t.throwsAsync(evaluateVqa(lf, { count: 1, wording: 'bare' as never }), { code: 'E_ARG' });
  await t.throwsAsync(evaluateVqa(lf, { count: 1, blanks: -1 }), { code: 'E_ARG' });
  await t.throwsAsync(evaluateVqa(lf, { count: 1, blanks: 1.5 }), { code: 'E_ARG' });
});

test('wordings: held-out captions keep the prompt\'s objects; bare prompts are the single-object half without a place', (t) => {
  const fixed = shapesEvalPrompts();
  for (const p of fixed.slice(95, 105)) {
    const h = wordPrompt(p, 'heldout');
    t.deepEqual(h.objects, p.objects);
    t.not(h.caption, p.caption);
    for (const o of p.objects) t.true(h.caption.toLowerCase().includes(`${o.colour} ${o.shape}`), h.caption);
  }
  const b = wordPrompt(fixed[0], 'bare');
  t.regex(b.caption, /^an? \w+ (circle|square|triangle)$/);
  t.is(b.objects[0].place, undefined);
  t.is(wordPrompt(fixed[0], 'template'), fixed[0]);
});

test('a bare prompt is scored without a position', async (t) => {
  const lf = await LatteFlow.load(DEFAULT_MODEL, { backend: 'cpu', threads: 2 });
  t.teardown(() => lf.dispose());
  const r = await evaluateShapes(lf, { limit: 2, wording: 'bare', steps: 6 });
  t.is(r.prompts, 2);
  t.true(r.perPrompt.every((s) => s.kind === 'one' && s.position === undefined));
  t.true(Number.isNaN(r.position) && Number.isNaN(r.relation));
  t.true(r.captions.every((c) => /^an? /.test(c)));
});
