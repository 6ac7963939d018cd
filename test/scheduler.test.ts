// The scheduler of one loaded model: concurrent image requests share batched forwards by expert group
// (with equal results to running alone), no request starves, a bounded queue refuses with E_BUSY and a
// retry hint, abort frees a slot, dispose drains or drops, previews decode the clean-image estimate.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { LatteError, LatteFlow, type GenerateOptions, type GenerateProgress } from '../lib/index.ts';

const tiny = fileURLToPath(new URL('./fixtures/tiny-model', import.meta.url));
const shipped = fileURLToPath(new URL('../models/shapes', import.meta.url));
const maxDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

// requests at different steps, seeds, guidance (CFG on and off), samplers and counts
const REQUESTS: GenerateOptions[] = [
  { prompt: 'a small red circle on the left', seed: 1, steps: 8 },
  { prompt: 'a large blue square in the center', seed: 2, steps: 6, guidance: 1 },
  { prompt: 'a green triangle above a yellow circle', seed: 3, steps: 10, sampler: 'heun' },
  { prompt: 'a small purple square on the top', seed: 4, steps: 7, count: 2 },
  { prompt: 'a large orange triangle on the bottom', seed: 5, steps: 9, guidance: [2, 2, 3, 1] },
  { prompt: 'a red square to the right of a blue circle', seed: 6, steps: 5 },
];

test('concurrent image requests run in batched forwards by expert group and equal their solo runs (within one grey level)', async (t) => {
  const lf = await LatteFlow.load(shipped, { backend: 'cpu', threads: 2, maxBatch: 8 });
  t.teardown(() => lf.dispose());
  const solo = [];
  for (const r of REQUESTS) solo.push(await lf.generateImage(r));
  const batches: number[] = [];
  const off = lf.onBatch((b) => {
    t.is(b.kind, 'image');
    t.true(Number.isInteger(b.group) && b.group! >= 0 && b.group! < lf.generator.config.numGroups);
    batches.push(b.rows);
  });
  const together = await Promise.all(REQUESTS.map((r) => lf.generateImage(r)));
  off();
  t.true(batches.some((rows) => rows > 1), `batches held several requests' images (sizes ${batches.join(',')})`);
  t.true(Math.max(...batches) <= 8, 'no batch exceeds maxBatch');
  // fewer forwards than evaluations: 6 requests, 8+6+2*10+7+9+5 evaluations one by one
  const evaluations = 8 + 6 + 20 + 7 + 9 + 5;
  t.true(batches.length < evaluations, `${batches.length} batched forwards for ${evaluations} evaluations`);
  for (let i = 0; i < REQUESTS.length; i++) {
    t.is(together[i].length, solo[i].length);
    for (let k = 0; k < solo[i].length; k++) t.true(maxDiff(together[i][k].data, solo[i][k].data) <= 1, `request ${i} image ${k}: max difference ${maxDiff(together[i][k].data, solo[i][k].data)}`);
  }
  const s = lf.schedulerStats();
  t.is(s.imagesActive, 0);
  t.is(s.imagesQueued, 0);
  t.true(s.batches >= batches.length && s.batchRows >= batches.reduce((a, b) => a + b, 0));
});

test('no request starves: with maxBatch 2 and eight requests in two expert groups, each one steps at a steady pace', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2, maxBatch: 2 });
  t.teardown(() => lf.dispose());
  let ticks = 0;
  lf.onBatch(() => ticks++);
  const gaps: number[][] = [];
  const runs = Array.from({ length: 8 }, (_, i) => {
    const mine: number[] = [];
    gaps.push(mine);
    let last = 0;
    return lf.generateImage({
      prompt: i % 2 ? 'a red circle' : 'a blue square',
      seed: i,
      steps: 4 + (i % 3) * 4, // 4, 8, 12 steps: requests change groups at different times
      onProgress: () => {
        mine.push(ticks - last);
        last = ticks;
      },
    });
  });
  await Promise.all(runs);
  // two requests run at once (the rest wait for a slot, which the first gap includes); a running
  // request is served at least every other tick (its group or the other's, oldest first), plus the
  // one-tick lookahead — one starving behind the other would wait for it to finish
  const worst = Math.max(...gaps.flatMap((g) => g.slice(1)));
  t.true(worst <= 4, `the longest wait between two steps of one running request was ${worst} batches`);
  t.true(gaps.every((g) => g.length >= 4));
});

test('the bounded queue: E_BUSY with a retry hint when full; the admitted requests complete; an aborted waiter frees its place', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2, maxBatch: 1, maxQueue: 1 });
  t.teardown(() => lf.dispose());
  const a = lf.generateImage({ prompt: 'a red circle', steps: 6 });
  const b = lf.generateImage({ prompt: 'a blue square', steps: 6 });
  const busy = await t.throwsAsync(lf.generateImage({ prompt: 'a green circle', steps: 2 }), { instanceOf: LatteError });
  t.is(busy?.code, 'E_BUSY');
  t.true(typeof busy?.retryAfterMs === 'number' && busy.retryAfterMs >= 100, `retryAfterMs ${busy?.retryAfterMs}`);
  t.like(lf.schedulerStats(), { imagesActive: 1, imagesQueued: 1 });
  // answers have their own queue: an image backlog does not refuse them
  t.is((await Promise.all([a, b])).length, 2);
  // a waiter that aborts leaves the queue at once, with E_ABORTED
  const c = lf.generateImage({ prompt: 'a red circle', steps: 8 });
  const ac = new AbortController();
  const d = lf.generateImage({ prompt: 'a blue circle', steps: 2, signal: ac.signal });
  t.is(lf.schedulerStats().imagesQueued, 1);
  ac.abort();
  await t.throwsAsync(d, { instanceOf: LatteError, code: 'E_ABORTED' } as never);
  t.is(lf.schedulerStats().imagesQueued, 0);
  const e = lf.generateImage({ prompt: 'a blue circle', steps: 2 }); // the freed place is usable
  t.is((await Promise.all([c, e])).length, 2);
});

test('an abort mid-run stops within one step and hands the slot to the next request', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2, maxBatch: 1, maxQueue: 4 });
  t.teardown(() => lf.dispose());
  const ac = new AbortController();
  let steps = 0;
  const a = lf.generateImage({
    prompt: 'a red circle', steps: 50, signal: ac.signal,
    onProgress: (p) => {
      steps = p.step;
      if (p.step === 3) ac.abort();
    },
  });
  const b = lf.generateImage({ prompt: 'a blue square', steps: 3 });
  await t.throwsAsync(a, { instanceOf: LatteError, code: 'E_ABORTED' } as never);
  t.true(steps <= 4, `stopped after step ${steps}`);
  t.is((await b).length, 1);
});

test('dispose drains the requests in flight by default; with drop they reject E_ABORTED; later calls E_DISPOSED', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2, maxBatch: 2 });
  const a = lf.generateImage({ prompt: 'a red circle', steps: 6 });
  const closing = lf.dispose();
  t.is((await a).length, 1, 'drained');
  await closing;
  const lf2 = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2, maxBatch: 1, maxQueue: 2 });
  const b = lf2.generateImage({ prompt: 'a red circle', steps: 200 });
  const c = lf2.generateImage({ prompt: 'a blue circle', steps: 2 }); // waiting for the slot
  await new Promise((r) => setTimeout(r, 50));
  await lf2.dispose({ drop: true });
  await t.throwsAsync(b, { instanceOf: LatteError, code: 'E_ABORTED' } as never);
  await t.throwsAsync(c, { instanceOf: LatteError, code: 'E_DISPOSED' } as never);
  await t.throwsAsync(lf2.generateImage({ prompt: 'a red circle', steps: 2 }), { instanceOf: LatteError, code: 'E_DISPOSED' } as never);
});

test('previews: every previewEvery steps, decoded estimates of the clean images; the result is unchanged', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2 });
  t.teardown(() => lf.dispose());
  const q = { prompt: 'a red circle', steps: 7, seed: 3, count: 2 };
  const [plain] = await lf.generateImage(q);
  const seen: GenerateProgress[] = [];
  const imgs = await lf.generateImage({ ...q, previewEvery: 3, onProgress: (p) => seen.push(p) });
  t.deepEqual(imgs[0].data, plain.data);
  t.deepEqual(seen.filter((p) => p.previews).map((p) => p.step), [3, 6]);
  const p6 = seen[5].previews!;
  t.is(p6.length, 2);
  t.is(p6[0].width, imgs[0].width);
  t.is(p6[0].data.length, imgs[0].data.length);
  // the late estimate is close to the final image, the early one less so
  const d3 = maxDiff(seen[2].previews![0].data, imgs[0].data);
  t.true(p6[0].toPNG().length > 0);
  t.true(maxDiff(p6[0].data, imgs[0].data) <= d3, 'the estimate approaches the final image');
});

test('scheduler options and previewEvery are checked (E_ARG)', async (t) => {
  for (const bad of [{ maxBatch: 0 }, { maxBatch: 1.5 }, { maxQueue: -1 }])
    await t.throwsAsync(LatteFlow.load(tiny, { backend: 'cpu', ...bad }), { instanceOf: LatteError, code: 'E_ARG' } as never);
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2 });
  t.teardown(() => lf.dispose());
  await t.throwsAsync(lf.generateImage({ prompt: 'a red circle', previewEvery: -1 }), { instanceOf: LatteError, code: 'E_ARG' } as never);
  t.throws(() => lf.onBatch(5 as never), { instanceOf: LatteError });
});

test('concurrent answers share batched decode steps and give the solo answers (greedy and seeded)', async (t) => {
  const { examples } = await import('../lib/shapes/world.ts');
  const lf = await LatteFlow.load(shipped, { backend: 'cpu', threads: 2, maxBatch: 6 });
  t.teardown(() => lf.dispose());
  const asks = examples(777, 0, 6).map((ex, i) => ({
    image: { width: 64, height: 64, data: ex.image },
    question: i % 2 ? 'describe the image.' : ex.qa[0][0],
    maxTokens: 4 + i * 3, // answers of different lengths: sequences leave the batch at different steps
    ...(i === 5 ? { temperature: 0.8, seed: 3 } : {}),
  }));
  const solo: string[] = [];
  for (const a of asks) solo.push(await lf.answer(a));
  const rows: number[] = [];
  const off = lf.onBatch((b) => b.kind === 'answer' && rows.push(b.rows));
  const streamed: string[] = asks.map(() => '');
  const together = await Promise.all(
    asks.map(async (a, i) => {
      if (i !== 2) return lf.answer(a);
      for await (const piece of lf.answerStream(a)) streamed[i] += piece;
      return streamed[i];
    }),
  );
  off();
  t.true(rows.some((r) => r > 1), `decode steps held several answers (sizes ${rows.join(',')})`);
  t.true(Math.max(...rows) <= 6);
  t.deepEqual(together, solo);
  t.like(lf.schedulerStats(), { answersActive: 0, answersQueued: 0 });
});

test('the batched native steps check their callers: velocityBatch and decodeBatch refuse bad requests with codes', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2 });
  t.teardown(() => lf.dispose());
  const e = lf.engine;
  const g = lf.generator.config;
  const [h, w] = g.latentSize;
  const ids = Int32Array.from(lf.vlm.tokenizer.encode('a red circle'));
  const cond = lf.vlm.encodePrompt(ids, g.numLayers);
  t.teardown(() => cond.release());
  const x = e.noise([2, g.latentChannels, h, w], 1);
  const code = (f: () => unknown) => (t.throws(f) as LatteError | undefined)?.code;
  t.is(code(() => lf.generator.velocityBatch(x, 0, [])), 'E_ARG', 'no requests');
  t.is(code(() => lf.generator.velocityBatch(x, 0, [{ t: 0.5, cond, null: null, guidance: 1, images: 1 }])), 'E_SHAPE', 'images do not add up to the latent');
  t.is(code(() => lf.generator.velocityBatch(x, 0, [{ t: 2, cond, null: null, guidance: 1, images: 2 }])), 'E_ARG', 't outside [0, 1]');
  t.is(code(() => lf.generator.velocityBatch(x, 0, [{ t: 0.5, cond, null: null, guidance: 1, images: 0 }, { t: 0.5, cond, null: null, guidance: 1, images: 2 }])), 'E_ARG', 'zero images');
  const seq = lf.vlm.newSequence(16);
  t.teardown(() => seq.release());
  const tok = e.tensor(new Int32Array([1, 2]), [2], 'i32');
  t.is(code(() => lf.vlm.decodeBatch([], e.tensor(new Int32Array([1]), [1], 'i32'))), 'E_ARG', 'no sequences');
  t.is(code(() => lf.vlm.decodeBatch([seq, seq], tok)), 'E_ARG', 'a sequence twice');
  t.is(code(() => lf.vlm.decodeBatch([seq, cond], tok)), 'E_ARG', 'no prefill / not reserved');
  t.is(code(() => lf.vlm.decodeBatch([seq], tok)), 'E_SHAPE', 'tokens do not match the sequences');
  // the model goes on working
  t.is((await lf.generateImage({ prompt: 'a red circle', steps: 2 })).length, 1);
});
