// The shapes world's language (docs/shapes-world.md, "Language"): the TypeScript twin against the
// Python one's fixture (tools/reference/make_language_fixture.py), plus what the split promises.
import test from 'ava';
import fs from 'node:fs';
import { barePrompt, blankQa, captionVariant, expand, H_ONE_FRAMES, H_TWO_FRAMES, ONE_FRAMES, qaVariants, QUESTIONS, SPLITS, TWO_FRAMES, type Split } from '../lib/shapes/language.ts';
import { examples, example } from '../lib/shapes/world.ts';

const fixture = JSON.parse(fs.readFileSync(new URL('./fixtures/shapes_language.json', import.meta.url), 'utf8')) as {
  forms: { one: string[]; two: string[]; questions: Record<string, [string[], string[]]> };
  rows: { seed: number; i: number; split: Split; caption: string; qa: [string, string][]; blank: [string, string][] }[];
};

test('captions and questions equal the Python reference byte for byte', (t) => {
  t.is(fixture.rows.length, 240);
  for (const r of fixture.rows) {
    const ex = example(r.seed, r.i);
    t.is(captionVariant(ex, r.seed, r.i, r.split), r.caption, `caption ${r.seed}/${r.i}/${r.split}`);
    t.deepEqual(qaVariants(ex, r.seed, r.i, r.split).map(([q, a]) => [q, a]), r.qa, `qa ${r.seed}/${r.i}/${r.split}`);
    t.deepEqual(blankQa(r.seed, r.i, r.split).map(([q, a]) => [q, a]), r.blank, `blank ${r.seed}/${r.i}/${r.split}`);
  }
});

test('the train grammar expands to the Python reference\'s frames and questions, without the held-out ones', (t) => {
  t.deepEqual(ONE_FRAMES, fixture.forms.one);
  t.deepEqual(TWO_FRAMES, fixture.forms.two);
  t.deepEqual(JSON.parse(JSON.stringify(QUESTIONS)), fixture.forms.questions);
  for (const f of H_ONE_FRAMES) t.false(ONE_FRAMES.includes(f), f);
  for (const f of H_TWO_FRAMES) t.false(TWO_FRAMES.includes(f), f);
  t.deepEqual(expand(['a [b|c][| d] e'], ['a c e']), ['a b e', 'a b d e', 'a c d e']);
});

const frameOf = (q: string) => q.toLowerCase().replace(/[?.]$/, '');

test('held-out question forms never occur in the train split, and each of their words does', (t) => {
  const exs = examples(3, 0, 400);
  const trainQs = new Set<string>();
  const trainWords = new Set<string>();
  exs.forEach((ex, i) => {
    for (const [q] of [...qaVariants(ex, 3, i, 'train'), ...blankQa(3, i, 'train')]) {
      trainQs.add(frameOf(q));
      for (const word of frameOf(q).split(' ')) trainWords.add(word);
    }
    for (const word of frameOf(captionVariant(ex, 3, i, 'train')).split(' ')) trainWords.add(word);
  });
  for (const [family, [train, held]] of Object.entries(QUESTIONS)) {
    t.true(train.length >= 2 && held.length >= 1, family);
    for (const form of held) t.false(train.includes(form), `${family}: ${form}`);
  }
  exs.forEach((ex, i) => {
    for (const [q] of qaVariants(ex, 3, i, 'heldout')) {
      t.false(trainQs.has(frameOf(q)), `held-out question seen in training: ${q}`);
      for (const word of frameOf(q).split(' ')) t.true(trainWords.has(word), `held-out word never in training: ${word} (${q})`);
    }
    for (const word of frameOf(captionVariant(ex, 3, i, 'heldout')).split(' ')) t.true(trainWords.has(word), `held-out caption word ${word}`);
  });
});

test('answers are the templates\' answers; relation questions answer the scene; held-out captions keep size and place', (t) => {
  const exs = examples(5, 0, 300);
  exs.forEach((ex, i) => {
    for (const split of SPLITS) {
      const v = qaVariants(ex, 5, i, split);
      t.deepEqual(v.slice(0, ex.qa.length).map(([, a]) => a), ex.qa.map(([, a]) => a));
      if (ex.kind === 'two') {
        const [q, a] = v[v.length - 1];
        const [A, B] = ex.objects;
        const first = q.toLowerCase().indexOf(`${A.colour} ${A.shape}`) < q.toLowerCase().indexOf(`${B.colour} ${B.shape}`) ? A : B;
        const other = first === A ? B : A;
        const want = a === 'left' ? first.cx < other.cx : a === 'right' ? first.cx > other.cx : a === 'above' ? first.cy < other.cy : first.cy > other.cy;
        t.true(want, `${q} -> ${a}`);
      }
    }
    const held = captionVariant(ex, 5, i, 'heldout').toLowerCase();
    for (const o of ex.objects) t.true(held.includes(`${o.colour} ${o.shape}`), held);
    if (ex.kind === 'one') t.regex(held, /small|little|tiny|large|big/);
  });
  t.is(barePrompt({ colour: 'orange', shape: 'circle' }), 'an orange circle');
  t.is(barePrompt({ colour: 'red', shape: 'square' }), 'a red square');
  t.throws(() => captionVariant(exs[0], 5, 0, 'test' as Split), { message: /split must be one of/ });
});
