// The shipped model understands ordinary wording (issue 17; docs/shapes-world.md "Language"): the
// README's prompts capitalised or with a full stop draw the same scenes, held-out phrasings of
// questions get the right answers, and a blank image is answered as blank (trained, not special-cased:
// nothing in the engine looks at the image before the VLM does). Full figures: `latte-flow eval`,
// benchmarks/RESULTS.md.
import test from 'ava';
import { LatteFlow } from '../lib/index.ts';
import { DEFAULT_MODEL } from '../lib/cli.ts';
import { blankQa, qaVariants } from '../lib/shapes/language.ts';
import { examples, IMAGE_SIZE } from '../lib/shapes/world.ts';
import { rightAnswers } from '../lib/shapes/evaluate.ts';
import { accepted, README_PROMPTS, surfaces } from '../tools/shapes/readme-wording.ts';

// The shipped model meets the README target (32 of 32 pictures accepted; one miss is allowed for
// another CPU's rounding) but not the held-out questions' (31 of 40 right against 34): that bound sits
// under what it does, so a regression fails (benchmarks/RESULTS.md section 14d). The template-only
// model got 4 of 32 and 0 of 40; the phase-2 model 32 of 32 and 7 of 40; the phase-3 one 32 and 11.
const MAX_README_FAILS = 1;
const MIN_HELDOUT_RIGHT = 27; // of 40

const load = () => LatteFlow.load(DEFAULT_MODEL, { backend: 'cpu', threads: 2 });

test("the README's prompts, capitalised and with a full stop, are accepted on seeds 0-3", async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const fails: string[] = [];
  let n = 0;
  for (const p of README_PROMPTS) {
    const { capitalised, 'full stop': fullStop } = surfaces(p.caption);
    for (const caption of [capitalised, fullStop]) {
      for (let seed = 0; seed < 4; seed++, n++) {
        const [img] = await lf.generateImage({ prompt: caption, seed });
        t.deepEqual(img.warnings, [], caption);
        if (!accepted(p, img.data)) fails.push(`"${caption}" seed ${seed}`);
      }
    }
  }
  t.log(`${n - fails.length} of ${n} accepted${fails.length ? `; not: ${fails.join(', ')}` : ''}`);
  t.true(fails.length <= MAX_README_FAILS, `${fails.length} of ${n} not accepted: ${fails.join(', ')}`);
});

test('held-out question wording and blank images are answered', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const exs = examples(31337, 0, 40);
  let right = 0;
  let asked = 0;
  const misses: string[] = [];
  for (const [i, ex] of exs.entries()) {
    const qa = qaVariants(ex, 31337, i, 'heldout');
    const [question, expected, family] = qa[i % qa.length];
    const answer = (await lf.answer({ image: { width: IMAGE_SIZE, height: IMAGE_SIZE, data: ex.image }, question, maxTokens: 24 })).trim().toLowerCase();
    asked++;
    if (rightAnswers(ex, expected, family).includes(answer)) right++;
    else misses.push(`${question} -> ${answer} (${expected})`);
  }
  t.log(`held-out questions: ${right}/${asked}; misses: ${misses.slice(0, 5).join(' | ')}`);
  t.true(right >= MIN_HELDOUT_RIGHT, `${right} of ${asked} held-out questions right`);
  const blank = { width: IMAGE_SIZE, height: IMAGE_SIZE, data: new Uint8Array(IMAGE_SIZE * IMAGE_SIZE * 3).fill(255) };
  // "an answer that says so" (issue 17): either of the world's two blank answers; the phase-3 model answers
  // the held-out "how many objects do you see" with "no shapes" where the count family's answer is "zero"
  const saysBlank = new Set(['zero', 'no shapes']);
  for (const [question, expected, family] of blankQa(31337, 0, 'heldout').filter(([, , f]) => f === 'count' || f === 'describe')) {
    t.true(saysBlank.has(expected));
    const answer = (await lf.answer({ image: blank, question, maxTokens: 8 })).trim().toLowerCase();
    t.true(saysBlank.has(answer), `blank image, ${family}: ${question} -> ${answer} (the family's answer: ${expected})`);
  }
});
