// The prompt an answer is computed from, against transformers (fixtures/hf-text/chat.json, made by
// make.py there with Qwen2VLProcessor and Qwen2VLModel.get_rope_index on the tiny model): images in
// earlier turns and several in one turn, in document order, with their M-RoPE positions; the
// checkpoint's chat template and generation_config.json's eos_token_id honoured; prompt and answer
// lengths capped.
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as answerLib from '../lib/answer.ts'; // a namespace: this file also runs against versions without prepare()
import type { AnswerOptions } from '../lib/answer.ts';
import type { ChatMessage } from '../lib/chat.ts';
import { LatteError } from '../lib/errors.ts';
import { ropePositions } from '../lib/positions.ts';
import { Qwen2VL } from '../lib/qwen2vl.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const TINY = `${FIXTURES}tiny-model/vlm/`;
const CPU = { backend: 'cpu', threads: 1 } as const;

interface ImageSpec {
  width: number;
  height: number;
  seed: number;
}
type SpecMessage = { role: ChatMessage['role']; content: string | ({ type: 'text'; text: string } | { type: 'image'; image: ImageSpec })[] };
interface PromptCase {
  name: string;
  history: SpecMessage[];
  images: ImageSpec[];
  question: string;
  text: string;
  ids: number[];
  grids: [number, number, number][];
  positions: number[][];
  delta: number;
}
const chat = JSON.parse(fs.readFileSync(`${FIXTURES}hf-text/chat.json`, 'utf8')) as { prompts: PromptCase[] };

/** make.py's synthetic picture. */
function picture({ width, height, seed }: ImageSpec) {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = (x * 7 + y * 13 + c * 29 + seed * 31) & 255;
  return { width, height, data };
}

function options(p: PromptCase): AnswerOptions {
  const history: ChatMessage[] = p.history.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((part) => (part.type === 'image' ? { type: 'image', image: picture(part.image) } : part)),
  }));
  return { history, images: p.images.map(picture), question: p.question };
}

function tempModel(t: ExecutionContext, extra: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-answer-prompt-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'preprocessor_config.json']) fs.copyFileSync(path.join(TINY, f), path.join(dir, f));
  for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const { MAX_ANSWER_TOKENS, DEFAULT_MAX_PROMPT_TOKENS } = answerLib;
const prepare = (m: Qwen2VL, o: AnswerOptions) => answerLib.prepare(m, o);

let shared: Qwen2VL | undefined;
const model = () => shared ?? (() => { throw new Error('the tiny model did not load'); })();
test.before(async () => {
  shared = await Qwen2VL.load(TINY, CPU);
});
test.after.always(async () => {
  await shared?.dispose();
});

test('multi-image prompts (an image in history, several in one turn) give transformers\' ids, grids and M-RoPE positions', async (t) => {
  const m = model();
  t.is(chat.prompts.length, 2);
  for (const p of chat.prompts) {
    const req = await prepare(m, options(p));
    t.deepEqual(Array.from(req.ids), p.ids, `${p.name}: ids`);
    t.deepEqual(req.images.map((im) => im.grid), p.grids, `${p.name}: grids`);
    const { positions, delta } = ropePositions(req.ids, req.images.map((im) => im.grid), m.config);
    const S = p.ids.length;
    t.deepEqual([0, 1, 2].map((a) => Array.from(positions.subarray(a * S, (a + 1) * S))), p.positions, `${p.name}: positions`);
    t.is(delta, p.delta, `${p.name}: delta`);
    // each image's run of pads has its own size
    const runs: number[] = [];
    Array.from(req.ids).forEach((id, i) => {
      if (id === m.config.imageTokenId) i > 0 && req.ids[i - 1] === m.config.imageTokenId ? runs[runs.length - 1]++ : runs.push(1);
    });
    t.deepEqual(runs, p.grids.map(([gt, gh, gw]) => (gt * gh * gw) / m.config.mergeSize ** 2), `${p.name}: pads per image`);
    t.true(new Set(runs).size > 1, 'the images differ in size (else the order would not be tested)');
  }
});

test('answers run with images in history and several in the question; a bad one is named', async (t) => {
  const m = model();
  const o = options(chat.prompts[0]);
  const text = await m.answer({ ...o, maxTokens: 6 });
  t.is(typeof text, 'string');
  t.is(await m.answer({ ...o, maxTokens: 6 }), text, 'deterministic');
  const single = await m.answer({ image: picture({ width: 40, height: 30, seed: 1 }), question: 'what is this?', maxTokens: 6 });
  t.is(await m.answer({ images: [picture({ width: 40, height: 30, seed: 1 })], question: 'what is this?', maxTokens: 6 }), single, 'images: [x] is image: x');
  const bad = await t.throwsAsync(m.answer({ ...o, images: [picture({ width: 40, height: 30, seed: 1 }), new Uint8Array([1, 2, 3])] }), { instanceOf: LatteError });
  t.is(bad?.code, 'E_BAD_IMAGE');
  t.regex(bad?.message ?? '', /images\[1\]/);
  const noImage = await t.throwsAsync(m.answer({ question: 'x', history: [{ role: 'user', content: [{ type: 'image' }] }] }), { instanceOf: LatteError });
  t.is(noImage?.code, 'E_ARG');
  t.regex(noImage?.message ?? '', /history\[0\]\.content\[0\]/);
  t.is((await t.throwsAsync(m.answer({ question: 'x', image: picture({ width: 40, height: 30, seed: 1 }), images: [] }), { instanceOf: LatteError }))?.code, 'E_ARG');
  const literalPad = await t.throwsAsync(m.answer({ question: 'what is <|image_pad|>?' }), { instanceOf: LatteError });
  t.is(literalPad?.code, 'E_ARG', 'an image placeholder typed in the text has no image');
});

test("the checkpoint's chat template is used when it ships one; the real Qwen2-VL template gives the fixed renderer's ids", async (t) => {
  const qwen = fs.readFileSync(`${FIXTURES}hf-text/qwen2-vl-chat-template.jinja`, 'utf8');
  const p = chat.prompts[0];
  const withQwen = await Qwen2VL.load(tempModel(t, { 'chat_template.jinja': qwen }), CPU);
  t.teardown(() => withQwen.dispose());
  t.truthy(withQwen.chatTemplate);
  t.deepEqual(Array.from((await prepare(withQwen, options(p))).ids), p.ids);
  // another system message in tokenizer_config.json's template changes the prompt
  const custom = qwen.replace('You are a helpful assistant.', 'You describe shapes.');
  const cfg = JSON.stringify({ chat_template: custom });
  const withCustom = await Qwen2VL.load(tempModel(t, { 'tokenizer_config.json': cfg }), CPU);
  t.teardown(() => withCustom.dispose());
  const ids = Array.from((await prepare(withCustom, options(p))).ids);
  t.notDeepEqual(ids, p.ids);
  t.true(withCustom.tokenizer.decode(ids, false).includes('You describe shapes.'));
});

test("generation_config.json's eos_token_id ends the answer (an id or a list); without it the chat stop tokens do", async (t) => {
  const m = model();
  const q = { question: 'tell me about shapes', maxTokens: 8 };
  const ids: number[] = [];
  const plain = await m.answer({ ...q, onToken: (_, id) => ids.push(id) });
  t.deepEqual([...m.stopTokenIds], [m.tokenizer.id('<|im_end|>'), m.tokenizer.id('<|endoftext|>')]);
  t.true(ids.length >= 3 && plain.length > 0);
  // make the third generated token a stop token: the answer is the text of the first two
  for (const eos of [ids[2], [12345 % 7, ids[2]]]) {
    const stopping = await Qwen2VL.load(tempModel(t, { 'generation_config.json': JSON.stringify({ eos_token_id: eos }) }), CPU);
    const seen: number[] = [];
    const text = await stopping.answer({ ...q, onToken: (_, id) => seen.push(id) });
    await stopping.dispose();
    t.deepEqual(seen, ids.slice(0, 3), JSON.stringify(eos));
    t.is(text, m.tokenizer.decode(ids.slice(0, 2)));
  }
  for (const eos of ['2', -1, 1e9, [], [1.5]]) {
    const err = await t.throwsAsync(Qwen2VL.load(tempModel(t, { 'generation_config.json': JSON.stringify({ eos_token_id: eos }) }), CPU), { instanceOf: LatteError });
    t.is(err?.code, 'E_BAD_CONFIG', JSON.stringify(eos));
    t.regex(err?.message ?? '', /eos_token_id/);
  }
  const none = await Qwen2VL.load(tempModel(t, { 'generation_config.json': JSON.stringify({ do_sample: false }) }), CPU);
  t.deepEqual([...none.stopTokenIds], [...m.stopTokenIds]);
  await none.dispose();
});

test('prompt and answer caps: maxPromptTokens (default 8192 here) and maxTokens (at most 2^20) are E_ARG, checked before any image is encoded', async (t) => {
  const m = model();
  t.is(DEFAULT_MAX_PROMPT_TOKENS, 8192);
  t.is(MAX_ANSWER_TOKENS, 1 << 20);
  const long = 'tell me more about the red circle and the blue square. '.repeat(300); // about 10k tokens of the tiny vocabulary
  const started = Date.now();
  const err = await t.throwsAsync(m.answer({ question: long, maxTokens: 2 }), { instanceOf: LatteError });
  t.is(err?.code, 'E_ARG');
  t.regex(err?.message ?? '', /maxPromptTokens is 8192/);
  t.true(Date.now() - started < 5000, `refused in ${Date.now() - started} ms`);
  // a prompt that fits a raised cap runs (the tiny model's context is 32768)
  t.true((await prepare(m, { question: long, maxPromptTokens: 20000 })).ids.length > 8192);
  const short = { question: 'what are these?', images: [picture({ width: 40, height: 30, seed: 1 }), picture({ width: 90, height: 60, seed: 3 })] };
  const n = (await prepare(m, short)).ids.length;
  t.truthy(await prepare(m, { ...short, maxPromptTokens: n }));
  const cut = await t.throwsAsync(prepare(m, { ...short, maxPromptTokens: n - 1 }), { instanceOf: LatteError });
  t.is(cut?.code, 'E_ARG');
  t.regex(cut?.message ?? '', /maxPromptTokens is/);
  // an image that cannot be decoded after the cap is reached is never looked at: E_ARG, not E_BAD_IMAGE
  const early = await t.throwsAsync(prepare(m, { question: 'x', images: [picture({ width: 90, height: 60, seed: 3 }), new Uint8Array(8)], maxPromptTokens: 30 }), { instanceOf: LatteError });
  t.is(early?.code, 'E_ARG');
  for (const v of [0, 1.5, -3, MAX_ANSWER_TOKENS + 1, 1e9]) {
    const e = await t.throwsAsync(m.answer({ question: 'hi', maxTokens: v }), { instanceOf: LatteError });
    t.is(e?.code, 'E_ARG', `maxTokens ${v}`);
  }
  for (const v of [0, 2.5, '100']) t.is((await t.throwsAsync(m.answer({ question: 'hi', maxPromptTokens: v as number }), { instanceOf: LatteError }))?.code, 'E_ARG', `maxPromptTokens ${v}`);
});
