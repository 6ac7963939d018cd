// Bad model directories and bad inputs to the Qwen2-VL understanding API: every failure is a
// LatteError with a stable code, the process (and a model that saw the failures) survives, and a
// failed load leaves no engine behind. Broken copies of the tiny model live in temp dirs.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encode as encodePng } from 'fast-png';
import { LatteError, Qwen2VL, type AnswerOptions, type ErrorCode, type RgbImage } from '../lib/index.ts';
import { writeSt, type StTensor } from './helpers/safetensors.ts';

const TINY = fileURLToPath(new URL('./fixtures/tiny-model/vlm/', import.meta.url));
const LIB = fileURLToPath(new URL('../lib/index.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../', import.meta.url));
const FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'preprocessor_config.json'];
const CPU = { backend: 'cpu', threads: 1 } as const;
const GREEDY = { maxTokens: 4, temperature: 0 } as const;

type Json = Record<string, unknown>;
const tinyConfig = (): Json => JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));

/** A fresh temp dir removed at the end of the test. */
function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-vlm-errors-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A copy of the tiny model without `omit`; `config` (when given) replaces config.json. */
function modelCopy(t: ExecutionContext, opts: { omit?: string[]; config?: Json } = {}): string {
  const dir = tempDir(t);
  for (const f of FILES) if (!opts.omit?.includes(f)) fs.copyFileSync(path.join(TINY, f), path.join(dir, f));
  if (opts.config) fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(opts.config, null, 2));
  return dir;
}

/** The tensors of a safetensors file, in file order, with their raw bytes. */
function readSt(file: string): Record<string, StTensor> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
  entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  const out: Record<string, StTensor> = {};
  for (const [name, e] of entries) out[name] = { dtype: e.dtype, shape: e.shape, data: new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])) };
  return out;
}

/** A copy of the tiny model whose model.safetensors is `tensors`. */
function modelWithTensors(t: ExecutionContext, tensors: Record<string, StTensor>, config?: Json): string {
  const dir = modelCopy(t, { omit: ['model.safetensors'], config });
  writeSt(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

async function rejects(t: ExecutionContext, p: Promise<unknown>, code: ErrorCode, what: string, message?: RegExp): Promise<LatteError | undefined> {
  const err = await t.throwsAsync(p, { instanceOf: LatteError }, what);
  t.is(err?.code, code, `${what}: ${err?.message}`);
  if (message && err) t.regex(err.message, message, what);
  return err;
}

const loadFails = (t: ExecutionContext, dir: string, code: ErrorCode, what: string, message?: RegExp) => rejects(t, Qwen2VL.load(dir, CPU), code, what, message);

/** A 40x30 RGB test pattern, and its PNG. */
const pattern: RgbImage = (() => {
  const [width, height] = [40, 30];
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 5) * 11) & 255;
  return { width, height, data };
})();
const patternPng = encodePng({ width: pattern.width, height: pattern.height, data: pattern.data, channels: 3, depth: 8 });

// ---------------------------------------------------------------------------------------------
// A model shared by the serial tests: it sees every bad answer request, then must still answer.

let shared: Qwen2VL | undefined;
const model = (): Qwen2VL => {
  if (!shared) throw new Error('the shared model did not load');
  return shared;
};
test.before(async () => {
  shared = await Qwen2VL.load(TINY, CPU);
});
test.after.always(async () => {
  await shared?.dispose();
});

test.serial('answer: bad options are E_ARG', async (t) => {
  const m = model();
  const q = { question: 'what is this?', ...GREEDY };
  const bad: [string, Partial<AnswerOptions> | Record<string, unknown>][] = [
    ['empty question', { question: '' }],
    ['whitespace question', { question: ' \n\t ' }],
    ['question not a string', { question: 42 }],
    ['maxTokens 0', { maxTokens: 0 }],
    ['maxTokens 1.5', { maxTokens: 1.5 }],
    ['temperature -1', { temperature: -1 }],
    ['temperature NaN', { temperature: NaN }],
    ['topP 0', { topP: 0 }],
    ['topP 1.5', { topP: 1.5 }],
    ['topK -1', { topK: -1 }],
    ['seed -1', { seed: -1 }],
    ['seed 1.5', { seed: 1.5 }],
    ["stop ['']", { stop: [''] }],
    ['onToken not a function', { onToken: 'print' }],
    ['signal not an AbortSignal', { signal: { aborted: false } }],
    ['maxTokens above MAX_ANSWER_TOKENS (2^20)', { maxTokens: 1e7 }],
    ['maxPromptTokens 0', { maxPromptTokens: 0 }],
    ['image and images both', { image: pattern, images: [pattern] }],
    ['images not an array', { images: pattern }],
  ];
  for (const [what, o] of bad) await rejects(t, m.answer({ ...q, ...o } as AnswerOptions), 'E_ARG', what);
  await rejects(t, m.answer(undefined as unknown as AnswerOptions), 'E_ARG', 'no options');
  // every history message is checked, and the error names the bad one
  const history: [string, unknown, RegExp][] = [
    ['content a number', [{ role: 'user', content: 'hi' }, { role: 'user', content: 5 }], /history\[1\]\.content/],
    ['not an array', 'hello', /history must be an array/],
    ['a null message', [null], /history\[0\]/],
    ['an unknown role', [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'robot', content: 'c' }], /history\[2\].*robot/],
    ['a part that is a string', [{ role: 'user', content: ['hi'] }], /history\[0\]\.content\[0\]/],
    ['a part of unknown type', [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'video' }] }], /history\[0\]\.content\[1\].*video/],
    ['a text part without text', [{ role: 'user', content: [{ type: 'text' }] }], /history\[0\]\.content\[0\]\.text/],
    ['an image part without its image', [{ role: 'user', content: [{ type: 'image' }] }], /history\[0\]\.content\[0\]/],
  ];
  for (const [what, h, message] of history) await rejects(t, m.answer({ ...q, history: h } as AnswerOptions), 'E_ARG', `history: ${what}`, message);
});

test.serial('answer: undecodable or inconsistent images are E_BAD_IMAGE', async (t) => {
  const m = model();
  const q = { question: 'describe the image.', ...GREEDY };
  const dir = tempDir(t);
  const cases: [string, AnswerOptions['image']][] = [
    ['bytes that are not PNG/JPEG', new TextEncoder().encode('GIF89a, or rather not an image at all')],
    ['empty bytes', new Uint8Array(0)],
    ['a truncated PNG', patternPng.subarray(0, Math.floor(patternPng.length / 2))],
    ['a PNG cut inside its header', patternPng.subarray(0, 20)],
    ['a truncated JPEG', Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46)],
    ['an RgbImage with a wrong data length', { width: pattern.width, height: pattern.height, data: pattern.data.subarray(0, 100) }],
    ['an RgbImage of zero size', { width: 0, height: 0, data: new Uint8Array(0) }],
    ['a nonexistent path', path.join(dir, 'no-such-image.png')],
    ['a directory as path', dir],
    ['not an image at all', 42 as unknown as string],
  ];
  for (const [what, image] of cases) await rejects(t, m.answer({ ...q, image }), 'E_BAD_IMAGE', what);
  // the same in a list of images or in an earlier turn: the error names which image
  await rejects(t, m.answer({ ...q, images: [pattern, new Uint8Array(0)] }), 'E_BAD_IMAGE', 'images[1]', /images\[1\]/);
  const history = [{ role: 'user' as const, content: [{ type: 'image' as const, image: patternPng.subarray(0, 20) }] }];
  await rejects(t, m.answer({ ...q, history }), 'E_BAD_IMAGE', 'an image in history', /history\[0\]\.content\[0\]/);
  // imageLimits: an image over a caller's limit is E_BAD_IMAGE; a bad limit is the caller's E_ARG
  await rejects(t, m.answer({ ...q, image: patternPng, imageLimits: { maxPixels: 10 } }), 'E_BAD_IMAGE', 'over imageLimits.maxPixels', /limits\.maxPixels/);
  await rejects(t, m.answer({ ...q, image: patternPng, imageLimits: { maxBytes: 10 } }), 'E_BAD_IMAGE', 'over imageLimits.maxBytes', /limits\.maxBytes/);
  await rejects(t, m.answer({ ...q, image: patternPng, imageLimits: { maxPixels: -1 } }), 'E_ARG', 'a negative limit', /maxPixels/);
});

test.serial('answer: an already-aborted signal is E_ABORTED; aborting mid-answer is E_ABORTED', async (t) => {
  const m = model();
  const ac = new AbortController();
  ac.abort(new Error('not wanted'));
  const err = await rejects(t, m.answer({ question: 'what is this?', ...GREEDY, signal: ac.signal }), 'E_ABORTED', 'pre-aborted');
  t.is((err?.cause as Error | undefined)?.message, 'not wanted');
  // aborted from onToken after the first token: the answer stops with E_ABORTED
  const mid = new AbortController();
  await rejects(t, m.answer({ question: 'what is this?', maxTokens: 16, signal: mid.signal, onToken: () => mid.abort() }), 'E_ABORTED', 'mid-answer');
});

test.serial('answer: a prompt longer than max_position_embeddings is E_ARG', async (t) => {
  const dir = modelCopy(t, { config: { ...tinyConfig(), max_position_embeddings: 64 } });
  const m = await Qwen2VL.load(dir, CPU);
  t.teardown(() => m.dispose());
  t.is(m.config.maxPositions, 64);
  await rejects(t, m.answer({ question: 'tell me about this long question '.repeat(20), ...GREEDY }), 'E_ARG', 'long prompt', /64/);
  // the same model still answers a prompt that fits
  t.true((await m.answer({ question: 'hi', ...GREEDY })).length > 0);
});

// The signal is validated before it is trusted: a look-alike object that says aborted is E_ARG.
test.serial('answer: a non-AbortSignal that claims to be aborted is still E_ARG', async (t) => {
  await rejects(t, model().answer({ question: 'what is this?', ...GREEDY, signal: { aborted: true } as unknown as AbortSignal }), 'E_ARG', 'fake aborted signal');
});

test.serial('after all the failures the shared model answers as a fresh one; dispose then answer is E_DISPOSED', async (t) => {
  const m = model();
  const fresh = await Qwen2VL.load(TINY, CPU);
  const asks: AnswerOptions[] = [
    { question: 'what is in the picture?', ...GREEDY },
    { question: 'describe the image.', image: patternPng, ...GREEDY },
    { question: 'describe the image.', image: pattern, ...GREEDY },
  ];
  for (const o of asks) {
    const [a, b] = [await m.answer(o), await fresh.answer(o)];
    t.is(a, b, o.question);
  }
  await fresh.dispose();
  await rejects(t, fresh.answer({ question: 'still there?', ...GREEDY }), 'E_DISPOSED', 'answer after dispose');
});

// ---------------------------------------------------------------------------------------------
// Bad directories and configs.

test('load: a missing directory or config.json, or a config that is not JSON, is E_BAD_CONFIG', async (t) => {
  await loadFails(t, path.join(tempDir(t), 'no-such-model'), 'E_BAD_CONFIG', 'missing dir', /config\.json/);
  await loadFails(t, modelCopy(t, { omit: ['config.json'] }), 'E_BAD_CONFIG', 'missing config.json', /config\.json/);
  const notJson = modelCopy(t);
  fs.writeFileSync(path.join(notJson, 'config.json'), '{"model_type": "qwen2_vl", ');
  await loadFails(t, notJson, 'E_BAD_CONFIG', 'config.json not JSON', /config\.json/);
  const array = modelCopy(t);
  fs.writeFileSync(path.join(array, 'config.json'), '[1, 2]');
  await loadFails(t, array, 'E_BAD_CONFIG', 'config.json an array');
  await rejects(t, Qwen2VL.load('', CPU), 'E_ARG', 'empty dir string');
});

test('load: unsupported or inconsistent configs are E_BAD_CONFIG', async (t) => {
  const base = tinyConfig();
  const vision = base.vision_config as Json;
  const cases: [string, Json, RegExp][] = [
    ["model_type 'llama'", { ...base, model_type: 'llama' }, /model_type/],
    ['mrope_section not summing to head_dim/2', { ...base, rope_scaling: { type: 'mrope', mrope_section: [2, 3, 4] } }, /mrope_section/],
    ['no mrope_section', { ...base, rope_scaling: undefined }, /mrope_section/],
    ["text hidden_act 'gelu'", { ...base, hidden_act: 'gelu' }, /hidden_act/],
    ['vision hidden_size != hidden_size', { ...base, vision_config: { ...vision, hidden_size: 32 } }, /hidden_size/],
    ['num_attention_heads not a multiple of num_key_value_heads', { ...base, num_key_value_heads: 3 }, /num_key_value_heads/],
    ['hidden_size missing', { ...base, hidden_size: undefined }, /hidden_size/],
    ['num_hidden_layers not an integer', { ...base, num_hidden_layers: 2.5 }, /num_hidden_layers/],
    ['no vision_config', { ...base, vision_config: undefined }, /vision_config/],
  ];
  for (const [what, config, message] of cases) await loadFails(t, modelCopy(t, { config }), 'E_BAD_CONFIG', what, message);
});

test('load: tokenizer and preprocessor problems', async (t) => {
  await loadFails(t, modelCopy(t, { omit: ['tokenizer.json'] }), 'E_BAD_WEIGHTS', 'missing tokenizer.json', /tokenizer\.json/);
  const badTok = modelCopy(t);
  fs.writeFileSync(path.join(badTok, 'tokenizer.json'), 'not json');
  await loadFails(t, badTok, 'E_BAD_WEIGHTS', 'tokenizer.json not JSON', /tokenizer\.json/);
  await loadFails(t, modelCopy(t, { omit: ['preprocessor_config.json'] }), 'E_BAD_CONFIG', 'missing preprocessor_config.json', /preprocessor_config\.json/);
  const pre = JSON.parse(fs.readFileSync(path.join(TINY, 'preprocessor_config.json'), 'utf8')) as Json;
  for (const [what, p, message] of [
    ['patch_size differs from the model', { ...pre, patch_size: 16 }, /patch_size/],
    ['merge_size differs from the model', { ...pre, merge_size: 3 }, /merge_size/],
    ['image_std with a 0', { ...pre, image_std: [0.5, 0, 0.5] }, /image_std/],
    ['min_pixels above max_pixels', { ...pre, min_pixels: 1 << 20 }, /min_pixels/],
    ['max_pixels 1e9 (above 2^24)', { ...pre, max_pixels: 1e9 }, /max_pixels/],
    ['min_pixels and max_pixels 1e9', { ...pre, min_pixels: 1e9, max_pixels: 1e9 }, /min_pixels/],
  ] as [string, Json, RegExp][]) {
    const dir = modelCopy(t);
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(p));
    await loadFails(t, dir, 'E_BAD_CONFIG', what, message);
  }
});

test("load: weights 'f16' (or another storage) is E_ARG", async (t) => {
  await rejects(t, Qwen2VL.load(TINY, { ...CPU, weights: 'f16' as 'bf16' }), 'E_ARG', "weights 'f16'", /weights/);
  await rejects(t, Qwen2VL.load(TINY, { ...CPU, weights: 'int8' as 'bf16' }), 'E_ARG', "weights 'int8'", /weights/);
});

// ---------------------------------------------------------------------------------------------
// Bad checkpoints.

test('load: a missing, truncated or garbage model.safetensors is E_BAD_WEIGHTS', async (t) => {
  await loadFails(t, modelCopy(t, { omit: ['model.safetensors'] }), 'E_BAD_WEIGHTS', 'missing model.safetensors', /safetensors/);
  const full = fs.readFileSync(path.join(TINY, 'model.safetensors'));
  const headerEnd = 8 + Number(full.readBigUInt64LE(0));
  const cut = (what: string, bytes: Uint8Array, message?: RegExp) => {
    const dir = modelCopy(t, { omit: ['model.safetensors'] });
    fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes);
    return loadFails(t, dir, 'E_BAD_WEIGHTS', what, message);
  };
  await cut('cut in the data area', full.subarray(0, headerEnd + Math.floor((full.length - headerEnd) / 2)), /truncated/);
  await cut('cut one byte short', full.subarray(0, full.length - 1), /truncated/);
  await cut('cut inside the header', full.subarray(0, Math.floor(headerEnd / 2)), /truncated/);
  await cut('cut inside the length', full.subarray(0, 5), /truncated/);
  await cut('empty file', new Uint8Array(0));
  await cut('garbage bytes', new TextEncoder().encode('this is not a safetensors file, just some text that goes on a while'));
  const pseudo = new Uint8Array(4096);
  for (let i = 0, x = 12345; i < pseudo.length; i++) pseudo[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  await cut('random bytes', pseudo);
  const garbledHeader = Uint8Array.from(full);
  garbledHeader.fill(0x7b, 8, 8 + 64); // '{{{{...'
  await cut('a header that is not JSON', garbledHeader, /header/);
});

test('load: a checkpoint lacking a tensor names it (E_BAD_WEIGHTS)', async (t) => {
  const tensors = readSt(path.join(TINY, 'model.safetensors'));
  for (const name of ['model.layers.1.mlp.up_proj.weight', 'visual.blocks.0.attn.qkv.bias', 'model.norm.weight']) {
    t.truthy(tensors[name], name);
    const { [name]: _, ...rest } = tensors;
    const err = await loadFails(t, modelWithTensors(t, rest), 'E_BAD_WEIGHTS', `without ${name}`);
    t.true(err?.message.includes(name), err?.message);
  }
});

test('load: mis-shaped and integer-typed weights are E_BAD_WEIGHTS', async (t) => {
  const tensors = readSt(path.join(TINY, 'model.safetensors'));
  // the config's intermediate_size no longer matches the MLP weights
  await loadFails(t, modelWithTensors(t, tensors, { ...tinyConfig(), intermediate_size: 128 }), 'E_BAD_WEIGHTS', 'intermediate_size 128', /shape/);
  // one tensor re-declared with another shape of the same size
  const norm = tensors['model.norm.weight'];
  await loadFails(t, modelWithTensors(t, { ...tensors, 'model.norm.weight': { ...norm, shape: [norm.shape[0] / 2, 2] } }), 'E_BAD_WEIGHTS', 'reshaped norm', /model\.norm\.weight/);
  // the same bytes declared as int32
  await loadFails(t, modelWithTensors(t, { ...tensors, 'model.norm.weight': { ...norm, dtype: 'I32' } }), 'E_BAD_WEIGHTS', 'I32 norm', /model\.norm\.weight/);
  const up = tensors['model.layers.0.mlp.up_proj.weight'];
  await loadFails(t, modelWithTensors(t, { ...tensors, 'model.layers.0.mlp.up_proj.weight': { ...up, dtype: 'I32' } }), 'E_BAD_WEIGHTS', 'I32 linear', /up_proj/);
  // a dtype the format does not have
  await loadFails(t, modelWithTensors(t, { ...tensors, 'model.norm.weight': { ...norm, dtype: 'F8_E4M3' } }), 'E_BAD_WEIGHTS', 'unknown dtype', /dtype/);
  // a tensor whose byte count disagrees with its shape
  await loadFails(t, modelWithTensors(t, { ...tensors, 'model.norm.weight': { ...norm, data: norm.data.subarray(4) } }), 'E_BAD_WEIGHTS', 'short tensor', /bytes/);
});

test('load: a sharded checkpoint and transformers-5 names load and answer as the single file', async (t) => {
  const tensors = readSt(path.join(TINY, 'model.safetensors'));
  const names = Object.keys(tensors);
  const ask = async (dir: string): Promise<string[]> => {
    const m = await Qwen2VL.load(dir, CPU);
    try {
      return [await m.answer({ question: 'what is in the picture?', ...GREEDY }), await m.answer({ question: 'describe the image.', image: pattern, ...GREEDY })];
    } finally {
      await m.dispose();
    }
  };
  const want = await ask(TINY);

  // model.safetensors.index.json + two shards
  const sharded = modelCopy(t, { omit: ['model.safetensors'] });
  const shardNames = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const half = Math.ceil(names.length / 2);
  const weightMap: Record<string, string> = {};
  [names.slice(0, half), names.slice(half)].forEach((part, i) => {
    writeSt(path.join(sharded, shardNames[i]), Object.fromEntries(part.map((n) => [n, tensors[n]])));
    for (const n of part) weightMap[n] = shardNames[i];
  });
  const totalSize = Object.values(tensors).reduce((s, x) => s + x.data.length, 0);
  fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  t.deepEqual(await ask(sharded), want, 'sharded');

  // an index that lists a tensor its shard lacks, or a shard that is missing, is E_BAD_WEIGHTS
  const lying = modelCopy(t, { omit: ['model.safetensors'] });
  for (const s of shardNames) fs.copyFileSync(path.join(sharded, s), path.join(lying, s));
  fs.writeFileSync(path.join(lying, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...weightMap, 'model.extra.weight': shardNames[0] } }));
  await loadFails(t, lying, 'E_BAD_WEIGHTS', 'index lists a tensor not in its shard', /model\.extra\.weight/);
  fs.rmSync(path.join(lying, shardNames[1]));
  fs.writeFileSync(path.join(lying, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  await loadFails(t, lying, 'E_BAD_WEIGHTS', 'a missing shard', /00002/);

  // transformers 5: model.language_model.* and model.visual.*
  const v5 = (n: string) => (n.startsWith('visual.') ? `model.${n}` : n.startsWith('model.') ? `model.language_model.${n.slice(6)}` : n);
  const renamed = Object.fromEntries(names.map((n) => [v5(n), tensors[n]]));
  t.true(Object.keys(renamed).some((n) => n.startsWith('model.language_model.layers.')) && Object.keys(renamed).some((n) => n.startsWith('model.visual.blocks.')));
  t.deepEqual(await ask(modelWithTensors(t, renamed)), want, 'transformers-5 names');
});

// ---------------------------------------------------------------------------------------------
// No engine outlives a failed load.

test('failed loads leave no engine threads or handles behind, and the process exits', async (t) => {
  const dir = tempDir(t);
  const tensors = readSt(path.join(TINY, 'model.safetensors'));
  const { ['model.layers.1.mlp.up_proj.weight']: _, ...lacking } = tensors;
  const noTensor = path.join(dir, 'lacking');
  fs.mkdirSync(noTensor);
  for (const f of FILES) if (f !== 'model.safetensors') fs.copyFileSync(path.join(TINY, f), path.join(noTensor, f));
  writeSt(path.join(noTensor, 'model.safetensors'), lacking);
  const noPre = path.join(dir, 'no-preprocessor');
  fs.mkdirSync(noPre);
  for (const f of FILES) if (f !== 'preprocessor_config.json') fs.copyFileSync(path.join(TINY, f), path.join(noPre, f));
  // a separate process: its thread count and libuv handles are not shared with other tests
  const script = path.join(dir, 'leak.mts');
  fs.writeFileSync(
    script,
    `
import fs from 'node:fs';
import { Qwen2VL } from ${JSON.stringify(pathToFileURL(LIB).href)};
const threads = () => fs.readdirSync('/proc/self/task').length;
const resources = () => process.getActiveResourcesInfo().length;
const fail = async (dir) => { try { await Qwen2VL.load(dir, { backend: 'cpu', threads: 2 }); return 'loaded'; } catch (e) { return e.code; } };
const dirs = ${JSON.stringify([noTensor, noPre])};
for (const d of dirs) await fail(d); // warm-up: lazily created pools, the addon itself
const before = { threads: threads(), resources: resources() };
const codes = [];
for (let i = 0; i < 10; i++) for (const d of dirs) codes.push(await fail(d));
const after = { threads: threads(), resources: resources() };
console.log(JSON.stringify({ before, after, codes: [...new Set(codes)] }));
`,
  );
  const r = await new Promise<{ err: Error | null; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, ['--import=tsx', script], { cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => resolve({ err, stdout, stderr })),
  );
  t.is(r.err, null, `the process exits on its own: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').at(-1) ?? '{}';
  const got = JSON.parse(line) as { before: { threads: number; resources: number }; after: { threads: number; resources: number }; codes: string[] };
  t.deepEqual(got.codes.sort(), ['E_BAD_CONFIG', 'E_BAD_WEIGHTS']);
  // 20 failed loads: a leaked engine worker per load would add 20+ threads; V8/libuv may start one or two of their own
  t.true(got.after.threads - got.before.threads <= 2, `threads: ${line}`);
  t.is(got.after.resources, got.before.resources, `active resources: ${line}`);
});

// transformers 5 moves rope_theta into text_config.rope_parameters: the same model must give the
// same logits from either layout (the default 10000 would silently change them).
test('load: a transformers-5 config (text_config, rope_parameters.rope_theta) gives the logits of the older layout', async (t) => {
  const base = tinyConfig();
  const textKeys = ['hidden_act', 'max_position_embeddings', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'intermediate_size', 'vocab_size', 'rms_norm_eps', 'use_sliding_window', 'attention_dropout'];
  const old = { ...base, rope_theta: 1e6 };
  const v5: Json = { text_config: { model_type: 'qwen2_vl_text', rope_parameters: { rope_type: 'default', mrope_section: [2, 3, 3], rope_theta: 1e6 } } };
  for (const [k, v] of Object.entries(base)) if (k !== 'rope_scaling' && k !== 'rope_theta') (textKeys.includes(k) ? (v5.text_config as Json) : v5)[k] = v;
  const logits = async (dir: string): Promise<Float32Array> => {
    const m = await Qwen2VL.load(dir, CPU);
    try {
      const ids = Int32Array.from(m.tokenizer.encode('<|im_start|>user\nhello there, how are you doing today?<|im_end|>\n<|im_start|>assistant\n'));
      const S = ids.length;
      const pos = Int32Array.from({ length: 3 * S }, (_, i) => i % S); // text only: t = h = w = index
      return await m.prefill(m.newSequence(), ids, [], pos).readFloat32();
    } finally {
      await m.dispose();
    }
  };
  const [a, b, tiny] = [await logits(modelCopy(t, { config: old })), await logits(modelCopy(t, { config: v5 })), await logits(TINY)];
  t.notDeepEqual(a, tiny, 'rope_theta 1e6 changes the logits (else this test proves nothing)');
  t.deepEqual(b, a);
});
