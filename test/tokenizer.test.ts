// Tokenizer, chat template and image-token expansion against the reference (which matches Hugging
// Face's tokenizers and chat template: tools/reference/HF_PARITY.md).
import test from 'ava';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expandImagePads, imageTokenCount, LatteError, openCheckpoint, renderChat, STOP_TOKENS, TextTokenizer } from '../lib/index.ts';
import { cpuEngine } from './helpers/engine.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const tok = TextTokenizer.fromFile(`${fixtures}tiny-model/vlm/tokenizer.json`);

test('chat + image pads + tokenizer reproduce the reference prompt ids', async (t) => {
  const ck = openCheckpoint(`${fixtures}vlm_logits.safetensors`);
  const meta = JSON.parse(ck.metadata().config);
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const want = Array.from((await e.load(ck, 'in.input_ids').read()) as Int32Array);
  const [gt, gh, gw] = Array.from((await e.load(ck, 'in.grid_thw').read()) as Int32Array);
  const merge = meta.vision_config.spatial_merge_size;
  const text = renderChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'describe the image.' }] }]);
  const expanded = expandImagePads(text, [[gt, gh, gw]], merge);
  t.is(expanded, meta.prompt);
  t.deepEqual(tok.encode(expanded), want);
  t.is(imageTokenCount([gt, gh, gw], merge), want.filter((id) => id === tok.id('<|image_pad|>')).length);
});

test('chat template: system default, text-only, multi-turn, no generation prompt', (t) => {
  t.is(
    renderChat([{ role: 'user', content: 'hi' }]),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  );
  t.is(
    renderChat(
      [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'b' },
      ],
      false,
    ),
    '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n',
  );
  t.is(t.throws(() => renderChat([]), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => expandImagePads('<|image_pad|>', [], 2), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => imageTokenCount([1, 3, 4], 2), { instanceOf: LatteError })?.code, 'E_ARG');
});

test('tokens round-trip; the streamer emits whole characters only and loses nothing', (t) => {
  const text = 'a red circle, ünïcødé ✓ and 🙂 shapes';
  const ids = tok.encode(text);
  t.is(tok.decode(ids), text);
  const s = tok.streamer();
  const pieces = ids.map((id) => s.push(id));
  pieces.push(s.flush());
  t.is(pieces.join(''), text);
  t.false(pieces.some((p) => p.includes('\uFFFD')), 'no partial character was emitted');
  for (const stop of STOP_TOKENS) t.true(Number.isInteger(tok.id(stop)));
  t.is(t.throws(() => tok.id('<|no_such_token|>'), { instanceOf: LatteError })?.code, 'E_BAD_WEIGHTS');
  t.is(t.throws(() => TextTokenizer.fromFile(`${fixtures}missing/tokenizer.json`), { instanceOf: LatteError })?.code, 'E_BAD_WEIGHTS');
});

test('a split pattern that repeats a repeating group is refused at load (catastrophic backtracking)', async (t) => {
  const { hasNestedQuantifier } = await import('../lib/tokenizer.ts');
  const qwen2 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  for (const re of ['(.*)*x', '(a+)+', String.raw`(?:\s+\S)+`, '([ab]{2,})+', '(a*)?*', '((a)+b)*']) t.true(hasNestedQuantifier(re), re);
  for (const re of [qwen2, '(?:a|b)*', '(a*)?b', '(a{1,3})+', '[(]+', String.raw`(\()+`]) t.false(hasNestedQuantifier(re), re);
  const json = JSON.parse(fs.readFileSync(`${fixtures}tiny-model/vlm/tokenizer.json`, 'utf8'));
  json.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '(.*)*x' }, behavior: 'Isolated', invert: false }, json.pre_tokenizer] };
  const t0 = performance.now();
  const err = t.throws(() => TextTokenizer.fromJson(json), { instanceOf: LatteError });
  t.is(err?.code, 'E_BAD_WEIGHTS');
  t.regex(err?.message ?? '', /catastrophic backtracking/);
  t.true(performance.now() - t0 < 1000);
});
