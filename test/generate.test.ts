// The text-to-image API on the tiny model: images, progress, abort, determinism, samplers (built-in,
// user step function, user schedule), full depth, and option validation with codes.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { decode as decodePng } from 'fast-png';
import { LatteError, LatteFlow, type GenerateProgress, type StepFunction } from '../lib/index.ts';

const modelDir = fileURLToPath(new URL('./fixtures/tiny-model', import.meta.url));

const load = () => LatteFlow.load(modelDir, { backend: 'cpu', threads: 2 });
const maxDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

test('generateImage: images of the VAE size, PNG round trip, progress per step with its expert group', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const progress: GenerateProgress[] = [];
  const [img] = await lf.generateImage({ prompt: 'a red circle', steps: 6, seed: 1, onProgress: (p) => progress.push(p) });
  const side = lf.generator.config.latentSize[0] * lf.vae.config.factor;
  t.is(img.width, side);
  t.is(img.height, side);
  t.is(img.data.length, side * side * 3);
  t.is(img.seed, 1);
  const png = decodePng(img.toPNG());
  t.deepEqual([png.width, png.height, png.channels], [side, side, 3]);
  t.deepEqual(Array.from(png.data as Uint8Array), Array.from(img.data));
  // K = 2 uniform groups over t = 0, 1/6, ..., 5/6: steps 1-3 run group 0, 4-6 group 1
  t.deepEqual(progress, [1, 2, 3, 4, 5, 6].map((step) => ({ step, steps: 6, group: step <= 3 ? 0 : 1 })));
});

test('seeds: same seed, same image; image i of a batch is the single image of seed + i', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const q = { prompt: 'a blue square', steps: 4 };
  const [a] = await lf.generateImage({ ...q, seed: 10 });
  const [b] = await lf.generateImage({ ...q, seed: 10 });
  t.deepEqual(a.data, b.data);
  const batch = await lf.generateImage({ ...q, seed: 10, count: 3 });
  t.is(batch.length, 3);
  t.deepEqual(batch.map((i) => i.seed), [10, 11, 12]);
  const [c] = await lf.generateImage({ ...q, seed: 12 });
  t.true(maxDiff(batch[0].data, a.data) <= 1 && maxDiff(batch[2].data, c.data) <= 1, 'batched rows equal single runs (GEMM blocking may move a value by 1)');
  t.true(maxDiff(a.data, c.data) > 1, 'different seeds differ');
});

test('samplers: heun, guidance 1 (no null branch), a user step function equal to euler, a user schedule, full depth', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const q = { prompt: 'a green triangle', seed: 4 };
  const [euler] = await lf.generateImage({ ...q, steps: 5, sampler: 'euler' });
  const myEuler: StepFunction = ({ engine, x, t0, dt, velocity }) => engine.axpby(1, x, dt, velocity(x, t0));
  const [mine] = await lf.generateImage({ ...q, steps: 5, sampler: myEuler });
  t.deepEqual(mine.data, euler.data);
  const [sched] = await lf.generateImage({ ...q, schedule: [0, 0.2, 0.4, 0.6, 0.8, 1], sampler: 'euler' });
  t.deepEqual(sched.data, euler.data, 'the uniform schedule given explicitly is the default one');
  const [heun] = await lf.generateImage({ ...q, steps: 3, sampler: 'heun', guidance: 1 });
  t.is(heun.data.length, euler.data.length);
  const progress: GenerateProgress[] = [];
  const [full] = await lf.generateImage({ ...q, steps: 2, depth: 'full', onProgress: (p) => progress.push(p) });
  t.is(full.data.length, euler.data.length);
  t.is(progress.length, 2);
});

test('guidance per expert group: equal weights are the single weight; each group uses its own', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const q = { prompt: 'a yellow circle', seed: 9, steps: 4 };
  const [one] = await lf.generateImage({ ...q, guidance: 2.5 });
  const [both] = await lf.generateImage({ ...q, guidance: [2.5, 2.5] });
  t.deepEqual(both.data, one.data);
  const [unguided] = await lf.generateImage({ ...q, guidance: 1 });
  const [split] = await lf.generateImage({ ...q, guidance: [2.5, 1] }); // the reference's own case: test/parity/gen-model.test.ts
  t.true(maxDiff(split.data, one.data) > 1 && maxDiff(split.data, unguided.data) > 1, 'differs from guiding all steps and from guiding none');
});

test('abort: an aborted signal rejects at once; aborting mid-run stops within one step', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const pre = new AbortController();
  pre.abort();
  t.is((await t.throwsAsync(lf.generateImage({ prompt: 'x', signal: pre.signal }), { instanceOf: LatteError }))?.code, 'E_ABORTED');
  const ac = new AbortController();
  const seen: number[] = [];
  const err = await t.throwsAsync(
    lf.generateImage({
      prompt: 'a circle',
      steps: 30,
      signal: ac.signal,
      onProgress: (p) => {
        seen.push(p.step);
        if (p.step === 3) ac.abort();
      },
    }),
    { instanceOf: LatteError },
  );
  t.is(err?.code, 'E_ABORTED');
  t.true(seen.length <= 4, `progress after the abort: ${seen.join(',')}`);
  const [img] = await lf.generateImage({ prompt: 'a circle', steps: 2 });
  t.true(img.data.length > 0, 'the model still generates');
});

test('bad options are E_ARG', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const bad: object[] = [
    { prompt: '' },
    { prompt: '   ' },
    { prompt: 'x'.repeat(70000) },
    { prompt: 'a', steps: 0 },
    { prompt: 'a', steps: 1.5 },
    { prompt: 'a', guidance: NaN },
    { prompt: 'a', guidance: [2] }, // the tiny model has 2 groups
    { prompt: 'a', guidance: [2, 2, 2] },
    { prompt: 'a', guidance: [2, Infinity] },
    { prompt: 'a', guidance: '2' },
    { prompt: 'a', seed: -1 },
    { prompt: 'a', count: 0 },
    { prompt: 'a', count: 1000 },
    { prompt: 'a', sampler: 'rk4' },
    { prompt: 'a', shift: 0 },
    { prompt: 'a', schedule: [0, 0.5] },
    { prompt: 'a', schedule: [0, 0.6, 0.4, 1] },
    { prompt: 'a', schedule: [0, 1], steps: 3 },
    { prompt: 'a', depth: 'half' },
    { prompt: 'a', signal: {} },
    { prompt: 'a', onProgress: 3 },
  ];
  for (const o of bad) t.is((await t.throwsAsync(lf.generateImage(o as never), { instanceOf: LatteError }))?.code, 'E_ARG', JSON.stringify(o).slice(0, 60));
});
