// The streaming contract of answers: onToken sees every generated token id exactly once, in order
// (the one that ends the answer included), with the text it completed; the pieces join to the answer,
// which is the decode of those ids; and failures (onToken throwing, the engine failing mid-answer, an
// abort, a consumer that stops early) reach the caller without any unhandled rejection.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import type { Tensor } from '../lib/tensor.ts';
import { LatteError } from '../lib/errors.ts';
import { Qwen2VL } from '../lib/qwen2vl.ts';
import type { AnswerOptions } from '../lib/answer.ts';
import { renderChat } from '../lib/chat.ts';

const TINY = fileURLToPath(new URL('./fixtures/tiny-model/vlm/', import.meta.url));
const CPU = { backend: 'cpu', threads: 1 } as const;

const unhandled: unknown[] = [];
process.on('unhandledRejection', (e) => unhandled.push(e));

/**
 * The ids the model generates for `o`, straight from the engine (no stop handling): each token drawn
 * by the engine's own sampler from the decode step's logits at its step, on a growing cache, apart
 * from the sequence's own (recorded) draw that answers use.
 */
async function generatedIds(m: Qwen2VL, o: AnswerOptions & { maxTokens: number }): Promise<number[]> {
  const ids = Int32Array.from(m.tokenizer.encode(renderChat([{ role: 'user', content: [{ type: 'text', text: o.question }] }])));
  const e = m.engine;
  const S = ids.length;
  const positions = Int32Array.from({ length: 3 * S }, (_, i) => i % S); // text only: t = h = w = index
  const seq = m.newSequence();
  const sampling = { temperature: o.temperature ?? 0, topK: o.topK ?? 0, topP: o.topP ?? 1, seed: o.seed ?? 0 };
  let tok: Tensor = e.sample(m.prefill(seq, ids, [], positions), { ...sampling, step: 0 });
  const out: number[] = [];
  for (let step = 0; step < o.maxTokens; step++) {
    out.push(((await tok.read()) as Int32Array)[0]);
    tok = e.sample(m.decodeWithLogits(seq, tok).logits, { ...sampling, step: step + 1 });
  }
  seq.release();
  return out;
}

test('onToken: every generated id once, in order, the last one carrying the held-back text; never -1', async (t) => {
  const m = await Qwen2VL.load(TINY, CPU);
  t.teardown(() => m.dispose());
  const stops = new Set(m.stopTokenIds);
  const asks: (AnswerOptions & { maxTokens: number })[] = [
    { question: 'tell me about shapes', maxTokens: 12 },
    { question: 'what colour is the circle?', maxTokens: 10, temperature: 1, seed: 3 },
    // a stop string that never occurs but whose first character does: text is held back, pieces are ''
    { question: 'tell me about shapes', maxTokens: 12, stop: [' \u2603\u2603'] },
    { question: 'and squares?', maxTokens: 9, temperature: 0.8, topK: 5, seed: 11, stop: [' \u2603'] },
  ];
  let empty = 0;
  for (const o of asks) {
    const want = await generatedIds(m, o);
    const end = want.findIndex((id) => stops.has(id));
    const reported = end >= 0 ? want.slice(0, end + 1) : want;
    const seen: [string, number][] = [];
    const streamed: string[] = [];
    for await (const piece of m.answerStream({ ...o, onToken: (text, id) => seen.push([text, id]) })) streamed.push(piece);
    const what = JSON.stringify(o);
    t.deepEqual(seen.map(([, id]) => id), reported, what);
    t.is(seen.map(([s]) => s).join(''), streamed.join(''), what);
    t.deepEqual(streamed, seen.map(([s]) => s).filter((s) => s !== ''), `${what}: answerStream yields the non-empty pieces`);
    t.is(streamed.join(''), m.tokenizer.decode(reported.filter((id) => !stops.has(id))), what);
    empty += seen.filter(([s]) => s === '').length;
  }
  t.true(empty > 0, 'some tokens completed no text (and were still reported)');
});

test('a stop string ends the answer at the token that completed it', async (t) => {
  const m = await Qwen2VL.load(TINY, CPU);
  t.teardown(() => m.dispose());
  const o = { question: 'tell me about shapes', maxTokens: 16 };
  const ids = await generatedIds(m, o);
  const full = m.tokenizer.decode(ids);
  const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
  const seen: number[] = [];
  const text = await m.answer({ ...o, stop: [stop], onToken: (_, id) => seen.push(id) });
  t.is(text, full.slice(0, full.indexOf(stop)));
  t.deepEqual(seen, ids.slice(0, seen.length));
  t.true(m.tokenizer.decode(seen).includes(stop) && !m.tokenizer.decode(seen.slice(0, -1)).includes(stop));
});

test('failures reach the caller, and nothing is left as an unhandled rejection', async (t) => {
  const m = await Qwen2VL.load(TINY, CPU);
  const q = { question: 'tell me about shapes', maxTokens: 12 };
  const before = await m.answer(q);
  // onToken throws: answer() and answerStream reject with that error
  const boom = new Error('boom');
  t.is(await t.throwsAsync(m.answer({ ...q, onToken: () => { throw boom; } })), boom);
  // an async onToken that rejects: awaited, so the answer rejects with it (never an orphaned rejection)
  t.is(await t.throwsAsync(m.answer({ ...q, onToken: async () => { throw boom; } })), boom);
  await t.throwsAsync(
    (async () => {
      for await (const _ of m.answerStream({ ...q, onToken: (_s, id) => { if (id >= 0) throw boom; } }));
    })(),
    { is: boom },
  );
  // a consumer that stops after the first piece, and an abort mid-answer
  for await (const _ of m.answerStream(q)) break;
  const ac = new AbortController();
  t.is((await t.throwsAsync(m.answer({ ...q, signal: ac.signal, onToken: () => ac.abort() }), { instanceOf: LatteError }))?.code, 'E_ABORTED');
  // concurrent answers where one fails do not disturb the other
  const [ok, failed] = await Promise.allSettled([m.answer(q), m.answer({ ...q, onToken: () => { throw boom; } })]);
  t.deepEqual(ok, { status: 'fulfilled', value: before });
  t.is((failed as PromiseRejectedResult).reason, boom);
  t.is(await m.answer(q), before, 'the model answers as before');
  // the engine fails mid-answer: the model is disposed from onToken
  let disposing: Promise<void> | undefined;
  const err = await t.throwsAsync(m.answer({ ...q, onToken: () => { disposing ??= m.dispose(); } }), { instanceOf: LatteError });
  t.is(err?.code, 'E_DISPOSED');
  await disposing;
  await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(unhandled, []);
});

test('stop strings: the answer ends at the earliest one in the text, whichever is listed first', async (t) => {
  const { StopScanner } = await import('../lib/answer.ts');
  const s = new StopScanner(['b', 'a']);
  t.is(s.push('xab'), 'x');
  t.true(s.done);
  const held = new StopScanner(['END', 'ND']);
  t.is(held.push('one E') + held.push('ND two'), 'one E'.slice(0, 4));
});

test('a conversation too large to render cheaply is E_ARG before it is tokenized', async (t) => {
  const m = await Qwen2VL.load(TINY, CPU);
  t.teardown(() => m.dispose());
  const big = 'x'.repeat(70_000);
  const cases: [string, AnswerOptions, RegExp][] = [
    ['long history', { question: 'hi', history: [{ role: 'user', content: big }, { role: 'assistant', content: big }] }, /conversation .* characters/],
    ['many turns', { question: 'hi', history: Array.from({ length: 1025 }, () => ({ role: 'user' as const, content: '' })) }, /history has 1025 messages/],
    ['many stops', { question: 'hi', stop: Array.from({ length: 65 }, (_, i) => `s${i}`) }, /stop must be/],
  ];
  for (const [what, o, why] of cases) {
    const err = await t.throwsAsync(m.answer(o), { instanceOf: LatteError }, what);
    t.is(err?.code, 'E_ARG', what);
    t.regex(err?.message ?? '', why, what);
  }
});
