// The understanding API's contract on the tiny model: streaming, onToken, stop strings, text-only
// chat, determinism, abort, concurrency on one engine, and memory returned on dispose.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { Engine, LatteError, openCheckpoint, Qwen2VL } from '../lib/index.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const modelDir = `${fixtures}tiny-model/vlm`;

async function fixtureImage(e: Engine) {
  const ck = openCheckpoint(`${fixtures}vlm_preprocess.safetensors`);
  const [height, width] = ck.info('in.image').shape;
  const data = Uint8Array.from((await e.load(ck, 'in.image').read()) as Int32Array);
  return { width, height, data };
}

test('answerStream yields the pieces answer() joins, onToken sees each; seeds are deterministic', async (t) => {
  const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 2 });
  t.teardown(() => m.dispose());
  const image = await fixtureImage(m.engine);
  const q = { image, question: 'what is in the picture?', maxTokens: 12 };
  const pieces: string[] = [];
  for await (const p of m.answerStream(q)) pieces.push(p);
  t.true(pieces.length > 0);
  const seen: string[] = [];
  const text = await m.answer({ ...q, onToken: (p) => seen.push(p) });
  t.is(pieces.join(''), text);
  t.deepEqual(seen.filter((p) => p !== ''), pieces, 'onToken also sees the tokens that complete no text');
  t.is(seen.length, 12, 'one call per generated token');
  const s1 = await m.answer({ ...q, temperature: 1, seed: 7 });
  t.is(await m.answer({ ...q, temperature: 1, seed: 7n }), s1);
  const others = await Promise.all([8, 9, 10].map((seed) => m.answer({ ...q, temperature: 1, seed })));
  t.true(others.some((o) => o !== s1), 'different seeds give a different answer');
});

test('text-only chat, with history, and stop strings cut the answer before the stop', async (t) => {
  const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 2 });
  t.teardown(() => m.dispose());
  const plain = await m.answer({ question: 'tell me about shapes', maxTokens: 16 });
  t.true(plain.length > 0);
  const withHistory = await m.answer({ question: 'and circles?', history: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi' }], maxTokens: 16 });
  t.is(typeof withHistory, 'string');
  // a stop string from the middle of the greedy answer: the text ends right before it
  const cut = Math.floor(plain.length / 2);
  const stop = plain.slice(cut, cut + 2);
  t.true(stop.length > 0);
  const stopped = await m.answer({ question: 'tell me about shapes', maxTokens: 16, stop: [stop] });
  t.is(stopped, plain.slice(0, plain.indexOf(stop)));
});

test('abort: an aborted signal rejects at once; aborting mid-answer stops within one token; the model then answers normally', async (t) => {
  const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 2 });
  t.teardown(() => m.dispose());
  const q = { question: 'tell me about shapes', maxTokens: 40 };
  const before = await m.answer(q);
  const pre = new AbortController();
  pre.abort();
  t.is((await t.throwsAsync(m.answer({ ...q, signal: pre.signal }), { instanceOf: LatteError }))?.code, 'E_ABORTED');
  const ac = new AbortController();
  let after = 0;
  const err = await t.throwsAsync(
    m.answer({
      ...q,
      signal: ac.signal,
      onToken: () => {
        if (ac.signal.aborted) after++;
        ac.abort();
      },
    }),
    { instanceOf: LatteError },
  );
  t.is(err?.code, 'E_ABORTED');
  t.is(after, 0, 'no piece arrives after the abort');
  t.is(await m.answer(q), before);
});

test('concurrent answers on one engine equal sequential ones; the event loop keeps turning', async (t) => {
  const m = await Qwen2VL.load(modelDir, { backend: 'cpu', threads: 2 });
  t.teardown(() => m.dispose());
  const image = await fixtureImage(m.engine);
  const qs = [
    { image, question: 'describe the image.', maxTokens: 10 },
    { question: 'tell me about shapes', maxTokens: 10, temperature: 0.9, seed: 3 },
    { image, question: 'what colour?', maxTokens: 10, temperature: 0.7, topK: 5, seed: 4 },
  ];
  const sequential: string[] = [];
  for (const q of qs) sequential.push(await m.answer(q));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const together = await Promise.all(qs.map((q) => m.answer(q)));
  clearInterval(timer);
  t.deepEqual(together, sequential);
  t.true(ticks > 0, 'timers ran while answering');
});

test('dispose returns the weights and caches to the engine; a disposed model throws E_DISPOSED', async (t) => {
  const e = new Engine({ backend: 'cpu', threads: 1 });
  t.teardown(() => e.dispose());
  const base = e.stats().bytesInUse;
  const m = await Qwen2VL.load(modelDir, { engine: e });
  t.true(e.stats().bytesInUse > base + 500_000, 'the weights are resident');
  await m.answer({ question: 'hi', maxTokens: 4 });
  await m.dispose();
  t.false(e.disposed, 'a passed-in engine stays alive');
  await e.fence();
  t.is(e.stats().bytesInUse, base);
  t.is((await t.throwsAsync(m.answer({ question: 'hi', maxTokens: 2 }), { instanceOf: LatteError }))?.code, 'E_DISPOSED');
});
