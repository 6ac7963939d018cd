// q8 weights on the shipped model: the eval's VQA questions answered greedily with 'q8' and 'f32'
// weights give the same answer for >= 95% of them (issue 21's bound; benchmarks/q8-quality.ts runs
// all 200 and ShapesEval: 199 of 200 identical on 3 Dec).
import test from 'ava';
import { LatteFlow } from '../lib/index.ts';
import { DEFAULT_MODEL } from '../lib/cli.ts';
import { examples, IMAGE_SIZE } from '../lib/shapes/world.ts';

test('q8 answers the shipped model\'s eval questions as f32 does (>= 95% identical)', async (t) => {
  const exs = examples(777777, 0, 40);
  const answers: Record<string, string[]> = {};
  for (const weights of ['f32', 'q8'] as const) {
    const lf = await LatteFlow.load(DEFAULT_MODEL, { backend: 'cpu', threads: 2, weights });
    t.teardown(() => lf.dispose());
    answers[weights] = [];
    for (let i = 0; i < exs.length; i++) {
      const [question] = exs[i].qa[i % exs[i].qa.length];
      answers[weights].push(await lf.answer({ image: { width: IMAGE_SIZE, height: IMAGE_SIZE, data: exs[i].image }, question, maxTokens: 24 }));
    }
  }
  const same = answers.f32.filter((a, i) => a === answers.q8[i]).length;
  t.log(`${same} of ${exs.length} answers identical`);
  t.true(same >= 0.95 * exs.length, `${same} of ${exs.length}`);
});
