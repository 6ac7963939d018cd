/**
 * The fuzz targets: what each case feeds to latte-flow and how its result is judged. Runs inside a
 * child process (test/fuzz/child.ts): a case that kills the process is found by the parent.
 *
 *   safetensors               mutated header/framing/data of one of the tiny model's three files:
 *                             openCheckpoint + names/info/metadata + every tensor loaded and read,
 *                             checked against an independent header validator; when it opens, the
 *                             whole model is loaded with it and asked for an image and an answer
 *   config-<part>             a mutated config of the tiny model, which is then loaded and asked
 *                             for an image and an answer; loaded fields are checked against the file
 *   png, jpeg                 mutated images through decodeImage and lf.answer({ image: bytes })
 *
 * Outcomes: ok (no error), coded (a LatteError with a known code other than E_INTERNAL), bad (any
 * other throw, E_INTERNAL, an accepted invalid input, an uncaught exception or unhandled rejection),
 * slow (above the time or memory bound), crash (the process died: decided by the parent).
 * `suspicious` lists silent-garbage signs that do not fail a case on their own.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { encode as encodePng } from 'fast-png';
import { decodeImage, Engine, LatteError, LatteFlow, openCheckpoint } from '../../lib/index.ts';
import { Rng } from './rng.ts';
import { TARGETS, type CaseResult, type StepResult, type Target } from './runner.ts';
import { buildSt, encodeRawPng, HOSTILE_TEMPLATES, HOSTILE_TOKENIZER_EDITS, Obj, mutateJpeg, mutateJsonText, mutatePng, mutateSt, mutateTree, parseSt, serialize, short, toTree } from './mutate.ts';

const jpegJs = createRequire(import.meta.url)('jpeg-js') as {
  encode(img: { data: Uint8Array; width: number; height: number }, quality?: number): { data: Uint8Array };
};

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TINY = path.join(ROOT, 'test/fixtures/tiny-model');

export const CONFIG_FILES = {
  'config-vlm': 'vlm/config.json',
  'config-preprocessor': 'vlm/preprocessor_config.json',
  'config-generator': 'generator/config.json',
  'config-vae': 'vae/config.json',
  'config-manifest': 'latte_flow.json',
  'config-tokenizer': 'vlm/tokenizer.json',
  'config-tokenizer_config': 'vlm/tokenizer_config.json',
} as const;
type ConfigTarget = keyof typeof CONFIG_FILES;

export { TARGETS, type Target };

/** The codes of lib/errors.ts ErrorCode (a type, so listed here). */
export const KNOWN_CODES = new Set([
  'E_SHAPE', 'E_DTYPE', 'E_ARG', 'E_INDEX', 'E_OOM', 'E_DISPOSED', 'E_BACKEND_UNAVAILABLE', 'E_ABORTED', 'E_NOT_COMPUTED',
  'E_BAD_WEIGHTS', 'E_BAD_CONFIG', 'E_BAD_IMAGE', 'E_NATIVE_LOAD', 'E_INTERNAL',
]);
/** Codes a target's bad input is expected to give; another known code is noted as suspicious. */
const EXPECTED_CODES: Record<string, readonly string[]> = {
  safetensors: ['E_BAD_WEIGHTS', 'E_BAD_CONFIG', 'E_DTYPE', 'E_SHAPE', 'E_OOM'],
  config: ['E_BAD_CONFIG', 'E_BAD_WEIGHTS', 'E_OOM'],
  image: ['E_BAD_IMAGE', 'E_OOM'],
};

export interface Limits {
  slowMs: number;
  memMb: number;
}

// ---------------------------------------------------------------------------------------------
// bases

const ST_FILES = ['generator/model.safetensors', 'vlm/model.safetensors', 'vae/diffusion_pytorch_model.safetensors'] as const;

const TOKENIZER_CONFIG = {
  add_bos_token: false,
  add_prefix_space: false,
  added_tokens_decoder: Object.fromEntries(
    ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|vision_end|>', '<|image_pad|>', '<|video_pad|>'].map((content, i) => [
      String(296 + i),
      { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    ]),
  ),
  bos_token: null,
  // Qwen2-VL's own template
  chat_template:
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
  clean_up_tokenization_spaces: false,
  eos_token: '<|im_end|>',
  errors: 'replace',
  model_max_length: 32768,
  pad_token: '<|endoftext|>',
  split_special_tokens: false,
  tokenizer_class: 'Qwen2Tokenizer',
  unk_token: null,
};

let pngBases: Uint8Array[] | undefined;
/** Small PNGs of every colour type (deterministic). */
export function pngBaseImages(): Uint8Array[] {
  if (pngBases) return pngBases;
  const px = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i) & 0xff);
  pngBases = [
    encodePng({ width: 32, height: 24, data: px(32 * 24 * 3, (i) => i * 7 + (i >> 5)), channels: 3, depth: 8 }),
    encodePng({ width: 20, height: 20, data: px(20 * 20 * 4, (i) => (i % 4 === 3 ? 200 : i * 13)), channels: 4, depth: 8 }),
    encodeRawPng(16, 40, 8, 0, (y) => px(16, (x) => x * 16 + y)),
    encodeRawPng(24, 24, 8, 3, (y) => px(24, (x) => (x + y) % 16), [{ type: 'PLTE', data: px(48, (i) => i * 5) }]),
    encodeRawPng(8, 8, 16, 2, (y) => px(48, (x) => x * 5 + y * 3)),
    encodeRawPng(10, 10, 8, 4, (y) => px(20, (x) => (x % 2 ? 255 : x * 20 + y))),
    encodeRawPng(13, 7, 1, 0, (y) => px(2, (x) => (y % 2 ? 0xaa : 0x55) + x)),
  ];
  return pngBases;
}

let jpegBases: Uint8Array[] | undefined;
export function jpegBaseImages(): Uint8Array[] {
  if (jpegBases) return jpegBases;
  const rgba = (w: number, h: number) => Uint8Array.from({ length: w * h * 4 }, (_, i) => (i % 4 === 3 ? 255 : (i * 5 + ((i / (w * 4)) | 0) * 9) & 0xff));
  jpegBases = [
    [32, 24, 75],
    [17, 9, 10],
    [64, 48, 95],
  ].map(([w, h, q]) => new Uint8Array(jpegJs.encode({ data: rgba(w, h), width: w, height: h }, q).data));
  return jpegBases;
}

// ---------------------------------------------------------------------------------------------
// cases

export type Files = Record<string, Uint8Array | 'missing' | 'directory'>;

export interface Case {
  target: Target;
  seed: number;
  index: number;
  desc: string;
  /** safetensors: the file (relative to the model) and its bytes; configs: files to replace. */
  files?: Files;
  /** png / jpeg: the image bytes. */
  image?: Uint8Array;
}

const baseCache = new Map<string, Uint8Array>();
function baseFile(rel: string): Uint8Array {
  let b = baseCache.get(rel);
  if (!b) {
    b = rel === CONFIG_FILES['config-tokenizer_config'] ? new Uint8Array(Buffer.from(JSON.stringify(TOKENIZER_CONFIG, null, 2))) : new Uint8Array(fs.readFileSync(path.join(TINY, rel)));
    baseCache.set(rel, b);
  }
  return b;
}

/** The case `index` of `target` in the run seeded `seed` (a pure function of the three). */
export function makeCase(target: Target, seed: number, index: number): Case {
  const rng = Rng.forCase(seed, target, index);
  const c: Case = { target, seed, index, desc: '' };
  if (target === 'safetensors') {
    const rel = rng.weighted<string>([[3, ST_FILES[0]], [1, ST_FILES[1]], [1, ST_FILES[2]]]);
    const doc = parseSt(baseFile(rel));
    const n = rng.weighted([[7, 1], [2, 2], [1, 3]]);
    const what: string[] = [];
    for (let k = 0; k < n; k++) what.push(mutateSt(rng, doc));
    c.files = { [rel]: buildSt(doc) };
    c.desc = `${rel}: ${what.join('; ')}`;
  } else if (target in CONFIG_FILES) {
    const rel = CONFIG_FILES[target as ConfigTarget];
    const doc = JSON.parse(Buffer.from(baseFile(rel)).toString('utf8'));
    const what: string[] = [];
    if (target === 'config-tokenizer' && rng.chance(0.35)) {
      const [name, edit] = rng.pick(HOSTILE_TOKENIZER_EDITS);
      edit(doc);
      what.push(name);
    }
    if (target === 'config-preprocessor' && rng.chance(0.2)) {
      const [lo, hi] = rng.pick([[1e8, 1e8], [1e12, 1e12], [1e300, 1e300], [1, 1], [0.5, 0.5], [784, 784], [3136, 1e15], [1e7, 2e7]]);
      Object.assign(doc, { min_pixels: lo, max_pixels: hi });
      what.push(`min_pixels ${lo}, max_pixels ${hi}`);
    }
    const tree = toTree(doc);
    const focus = target === 'config-tokenizer' ? (p: string) => !/^model\.(vocab|merges)/.test(p) : undefined;
    const n = what.length ? rng.weighted([[6, 0], [3, 1]]) : rng.weighted([[6, 1], [3, 2], [1, 3]]);
    for (let k = 0; k < n; k++) what.push(mutateTree(rng, tree, focus));
    if (target === 'config-tokenizer_config' && tree instanceof Obj && rng.chance(0.35)) {
      const t = rng.pick(HOSTILE_TEMPLATES);
      tree.set('chat_template', t);
      what.push(`chat_template ${short(JSON.stringify(t), 100)}`);
    }
    const text = serialize(tree, rng.chance(0.5));
    let bytes: Uint8Array | 'missing' | 'directory' = new Uint8Array(Buffer.from(text, 'utf8'));
    const r = rng.float();
    if (r < 0.12) {
      const m = mutateJsonText(rng, text);
      bytes = m.bytes;
      what.push(m.what);
    } else if (r < 0.14) {
      bytes = rng.pick(['missing', 'directory'] as const);
      what.length = 0;
      what.push(`the file is ${bytes === 'missing' ? 'missing' : 'a directory'}`);
    }
    c.files = { [rel]: bytes };
    c.desc = `${rel}: ${what.join('; ')}`;
  } else {
    const bases = target === 'png' ? pngBaseImages() : jpegBaseImages();
    const b = rng.int(bases.length);
    const mut = target === 'png' ? mutatePng : mutateJpeg;
    const n = rng.weighted([[8, 1], [2, 2]]);
    let bytes = bases[b];
    const what: string[] = [];
    for (let k = 0; k < n; k++) {
      try {
        const m = mut(rng, bytes);
        bytes = m.bytes;
        what.push(m.what);
      } catch (e) {
        what.push(`(could not parse the previous mutation for another: ${(e as Error).message})`);
        break;
      }
    }
    c.image = bytes;
    c.desc = `base ${b}: ${what.join('; ')}`;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// an independent safetensors header check (the format's rules plus the documented engine checks)

const ST_SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

interface StTensorInfo {
  dtype: string;
  shape: number[];
}
interface StVerdict {
  /** true: a valid file; false: invalid (`reason`); `hard`: accepting it would be wrong (sizes, offsets). */
  valid: boolean;
  hard?: boolean;
  reason?: string;
  tensors?: Map<string, StTensorInfo>;
}

export function checkSafetensors(bytes: Uint8Array): StVerdict {
  const bad = (reason: string, hard = true): StVerdict => ({ valid: false, hard, reason });
  if (bytes.length < 8) return bad('shorter than 8 bytes');
  const n = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0);
  if (8n + n > BigInt(bytes.length)) return bad(`header length ${n} runs past the end of the file`);
  const hb = bytes.subarray(8, 8 + Number(n));
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(hb);
  } catch {
    return bad('header is not UTF-8', false);
  }
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (e) {
    return bad(`header is not JSON (${(e as Error).message.slice(0, 60)})`, false);
  }
  if (!h || typeof h !== 'object' || Array.isArray(h)) return bad('header is not a JSON object', false);
  const dataLen = BigInt(bytes.length) - 8n - n;
  const tensors = new Map<string, StTensorInfo>();
  const spans: [bigint, bigint, string][] = [];
  for (const [name, v] of Object.entries(h as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const e = v as Record<string, unknown>;
    if (!e || typeof e !== 'object' || Array.isArray(e) || !('dtype' in e) || !('shape' in e) || !('data_offsets' in e)) return bad(`tensor ${short(name, 40)} lacks dtype, shape or data_offsets`);
    if (typeof e.dtype !== 'string' || !(e.dtype in ST_SIZE)) return bad(`tensor ${short(name, 40)} has a ${typeof e.dtype === 'string' ? `dtype ${short(e.dtype, 20)}` : `non-string dtype (${Array.isArray(e.dtype) ? 'array' : typeof e.dtype})`}`);
    const sh = e.shape;
    if (!Array.isArray(sh) || !sh.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) return bad(`tensor ${short(name, 40)} has a bad shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) return bad(`tensor ${short(name, 40)} has bad data_offsets`);
    // exact integers: JSON.parse rounds beyond 2^53, but such values are never a small file's sizes
    const numel = (sh as number[]).reduce((a, d) => a * BigInt(d), 1n);
    const [b0, b1] = (off as number[]).map((x) => BigInt(x));
    if (b1 < b0 || b1 > dataLen) return bad(`tensor ${short(name, 40)} lies outside the data (${b0}..${b1} of ${dataLen})`);
    if (b1 - b0 !== numel * BigInt(ST_SIZE[e.dtype])) return bad(`tensor ${short(name, 40)}: ${e.dtype}${JSON.stringify(sh)} needs ${numel * BigInt(ST_SIZE[e.dtype])} bytes, data_offsets give ${b1 - b0}`);
    if (b1 > b0) spans.push([b0, b1, name]);
    tensors.set(name, { dtype: e.dtype, shape: sh as number[] });
  }
  spans.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1]) return bad(`tensors ${short(spans[i - 1][2], 40)} and ${short(spans[i][2], 40)} overlap`);
  return { valid: true, tensors };
}

// ---------------------------------------------------------------------------------------------
// running cases

export interface Ctx {
  tmp: string;
  limits: Limits;
  basePng: Uint8Array;
  baseline?: { imageConstant: boolean; answer: string };
  /** png / jpeg: one loaded model for every case. */
  lf?: LatteFlow;
  /** safetensors: an engine for loading each tensor of an opened checkpoint. */
  engine?: Engine;
  /** The case running now (for uncaught errors). */
  current?: CaseResult;
  /** Called as each case starts (the harness self-test's faults). */
  hook?: (index: number) => void;
}

const LOAD = { threads: 1 } as const;
const PROMPT = { prompt: 'a red square', steps: 1, seed: 0 } as const;
const QUESTION = 'what shape?';

export async function setup(target: Target, limits: Limits): Promise<Ctx> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `latte-fuzz-${target}-`));
  const ctx: Ctx = { tmp, limits, basePng: pngBaseImages()[0] };
  jpegBaseImages();
  if (target === 'png' || target === 'jpeg') {
    ctx.lf = await LatteFlow.load(TINY, LOAD);
    ctx.baseline = { imageConstant: false, answer: await ctx.lf.answer({ image: ctx.basePng, question: QUESTION, maxTokens: 2 }) };
  } else {
    const lf = await LatteFlow.load(TINY, LOAD);
    const [img] = await lf.generateImage(PROMPT);
    ctx.baseline = { imageConstant: isConstant(img.data), answer: await lf.answer({ image: ctx.basePng, question: QUESTION, maxTokens: 2 }) };
    await lf.dispose();
    if (target === 'safetensors') ctx.engine = new Engine(LOAD);
  }
  return ctx;
}

export async function teardown(ctx: Ctx): Promise<void> {
  await ctx.lf?.dispose();
  await ctx.engine?.dispose();
  fs.rmSync(ctx.tmp, { recursive: true, force: true });
}

function isConstant(d: Uint8Array): boolean {
  for (let i = 3; i < d.length; i++) if (d[i] !== d[i % 3]) return false;
  return true;
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const stack = (e.stack ?? '').split('\n').slice(1, 6).join('\n');
    const cause = (e as { cause?: unknown }).cause;
    const c = cause instanceof Error ? `\n  cause: ${cause.name}${(cause as { code?: unknown }).code ? ` ${String((cause as { code?: unknown }).code)}` : ''}: ${short(cause.message, 300)}\n${(cause.stack ?? '').split('\n').slice(1, 4).join('\n')}` : '';
    return `${e.constructor?.name ?? e.name}${code !== undefined ? ` ${String(code)}` : ''}: ${short(e.message, 300)}\n${stack}${c}`;
  }
  return `a thrown ${typeof e}: ${short(String(e), 300)}`;
}

function classify(e: unknown): { outcome: 'coded' | 'bad'; code?: string; message: string } {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof LatteError) {
    if (!KNOWN_CODES.has(e.code)) return { outcome: 'bad', code: e.code, message: `unknown code ${e.code}: ${message}` };
    if (e.code === 'E_INTERNAL' || e.code === 'E_NATIVE_LOAD') return { outcome: 'bad', code: e.code, message };
    return { outcome: 'coded', code: e.code, message };
  }
  const name = e instanceof Error ? e.constructor?.name ?? e.name : typeof e;
  const code = (e as { code?: unknown })?.code;
  return { outcome: 'bad', code: typeof code === 'string' ? code : undefined, message: `${name}${typeof code === 'string' ? ` ${code}` : ''} (not a LatteError): ${message}` };
}

export function newResult(c: Case): CaseResult {
  return { target: c.target, seed: c.seed, index: c.index, desc: c.desc, outcome: 'ok', steps: [], ms: 0, memMb: 0, suspicious: [] };
}

/** Records a failure that is not a thrown error (an accepted invalid input, a broken result). */
export function markBad(r: CaseResult, step: string, message: string): void {
  r.steps.push({ step, outcome: 'bad', message: short(message, 400), ms: 0 });
  r.outcome = 'bad';
  r.detail ??= `${step}: ${message}`;
}

type StepOut<T> = { ok: true; value: T } | { ok: false; code?: string };

async function step<T>(r: CaseResult, name: string, f: () => T | Promise<T>, expected?: readonly string[]): Promise<StepOut<T>> {
  const t0 = performance.now();
  try {
    const value = await f();
    r.steps.push({ step: name, outcome: 'ok', ms: Math.round(performance.now() - t0) });
    return { ok: true, value };
  } catch (e) {
    const c = classify(e);
    r.steps.push({ step: name, outcome: c.outcome, code: c.code, message: short(c.message.split('\n')[0], 400), ms: Math.round(performance.now() - t0) });
    if (c.outcome === 'bad') {
      r.outcome = 'bad';
      r.detail ??= `${name}: ${describeError(e)}`;
    } else {
      if (r.outcome === 'ok') r.outcome = 'coded';
      if (expected && c.code && !expected.includes(c.code)) r.suspicious.push(`${name}: unexpected code ${c.code} (${short(c.message, 120)})`);
    }
    return { ok: false, code: c.code };
  }
}

function writeFiles(dir: string, files: Files): void {
  for (const [rel, v] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.rmSync(p, { recursive: true, force: true }); // a new inode: an old mapping of the file stays valid
    if (v === 'directory') fs.mkdirSync(p);
    else if (v !== 'missing') fs.writeFileSync(p, v);
  }
}

/** The tiny model with `files` replaced, in a fresh directory. */
function modelDir(ctx: Ctx, c: Case): string {
  const dir = path.join(ctx.tmp, `case-${c.index}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(TINY, dir, { recursive: true });
  if (c.files) writeFiles(dir, c.files);
  return dir;
}

/** Loads the model in `dir`, asks for one image and one answer, and disposes it. Returns whether it loaded. */
async function loadAndAsk(ctx: Ctx, r: CaseResult, dir: string, expected: readonly string[], checks?: (lf: LatteFlow) => void): Promise<boolean> {
  const l = await step(r, 'load', () => LatteFlow.load(dir, LOAD), expected);
  if (!l.ok) return false;
  const lf = l.value;
  try {
    checks?.(lf);
    const g = await step(r, 'generate', () => lf.generateImage(PROMPT), expected);
    if (g.ok) {
      const img = g.value[0];
      if (!img || !(img.width > 0) || !(img.height > 0) || img.data.length !== img.width * img.height * 3) markBad(r, 'generate', `a broken image: ${img?.width}x${img?.height} with ${img?.data?.length} bytes`);
      else if (isConstant(img.data) && !ctx.baseline?.imageConstant) r.suspicious.push(`generate: every pixel is (${Array.from(img.data.subarray(0, 3)).join(', ')}) (NaN/Inf?) where the unmutated model's image is not constant`);
    }
    const a = await step(r, 'answer', () => lf.answer({ image: ctx.basePng, question: QUESTION, maxTokens: 2 }), expected);
    if (a.ok && a.value === '' && ctx.baseline?.answer) r.suspicious.push(`answer: empty where the unmutated model answers ${JSON.stringify(ctx.baseline.answer)}`);
  } finally {
    await step(r, 'dispose', () => lf.dispose());
  }
  return true;
}

async function runSafetensors(ctx: Ctx, c: Case, r: CaseResult): Promise<void> {
  const [rel, bytes] = Object.entries(c.files!)[0] as [string, Uint8Array];
  const file = path.join(ctx.tmp, `case-${c.index}.safetensors`);
  writeFiles(ctx.tmp, { [path.basename(file)]: bytes });
  const verdict = checkSafetensors(bytes);
  const o = await step(r, 'open', () => openCheckpoint(file), EXPECTED_CODES.safetensors);
  if (!o.ok) return;
  const ck = o.value;
  try {
    if (!verdict.valid) {
      const msg = `openCheckpoint accepted an invalid file: ${verdict.reason}`;
      if (verdict.hard) markBad(r, 'open', msg);
      else r.suspicious.push(msg);
    }
    const names = await step(r, 'names', () => ck.names());
    if (!names.ok) return;
    if (verdict.valid && verdict.tensors) {
      const want = [...verdict.tensors.keys()].sort();
      const got = [...names.value].sort();
      if (JSON.stringify(want) !== JSON.stringify(got)) markBad(r, 'names', `names() differ from the header: ${short(JSON.stringify(got.filter((x) => !want.includes(x))), 100)} extra, ${short(JSON.stringify(want.filter((x) => !got.includes(x))), 100)} missing`);
    }
    await step(r, 'metadata', () => ck.metadata());
    for (const name of names.value) {
      const info = await step(r, `info`, () => ck.info(name), EXPECTED_CODES.safetensors);
      const want = verdict.tensors?.get(name);
      if (info.ok && want && (info.value.dtype !== want.dtype || JSON.stringify(info.value.shape) !== JSON.stringify(want.shape)))
        markBad(r, 'info', `info(${short(name, 60)}) = ${info.value.dtype}${short(JSON.stringify(info.value.shape), 60)}, the header says ${want.dtype}${short(JSON.stringify(want.shape), 60)}`);
    }
    // every tensor onto the engine and back (reads the mapped bytes the header points at)
    const e = ctx.engine!;
    for (const name of names.value) {
      const t = await step(r, 'load-tensor', () => e.load(ck, name), EXPECTED_CODES.safetensors);
      if (!t.ok) continue;
      await step(r, 'read-tensor', () => t.value.read(), EXPECTED_CODES.safetensors);
      t.value.dispose();
    }
  } finally {
    ck.close();
    fs.rmSync(file, { force: true });
  }
  // merge repeated per-tensor steps into one line each
  compactSteps(r);
  if (r.outcome === 'bad') return;
  // the whole model with this file
  const dir = modelDir(ctx, c);
  try {
    const loaded = await loadAndAsk(ctx, r, dir, EXPECTED_CODES.safetensors);
    if (loaded && verdict.valid && verdict.tensors) {
      const base = checkSafetensors(baseFile(rel)).tensors!;
      const wrong: string[] = [];
      for (const [name, b] of base) {
        if (/num_batches_tracked$/.test(name)) continue; // a BatchNorm counter, unused at inference
        const m = verdict.tensors.get(name);
        if (!m) wrong.push(`${name} is missing`);
        else if (JSON.stringify(m.shape) !== JSON.stringify(b.shape)) wrong.push(`${name} has shape ${short(JSON.stringify(m.shape), 60)}, not ${JSON.stringify(b.shape)}`);
        else if (FLOAT_DTYPES.has(b.dtype) && !FLOAT_DTYPES.has(m.dtype)) wrong.push(`${name} is ${m.dtype}, not a float type`);
      }
      if (wrong.length) markBad(r, 'load', `LatteFlow.load accepted a model whose weights do not fit it: ${wrong.slice(0, 3).join('; ')}${wrong.length > 3 ? ` (+${wrong.length - 3})` : ''}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function compactSteps(r: CaseResult): void {
  const out: StepResult[] = [];
  for (const s of r.steps) {
    const prev = out[out.length - 1];
    if (prev && prev.step === s.step && prev.outcome === s.outcome && prev.code === s.code) prev.ms += s.ms;
    else out.push({ ...s });
  }
  r.steps = out;
}

/** Config fields whose loaded value must be what the file says (path in the JSON, getter on the model). */
const CONFIG_ORACLE: Partial<Record<ConfigTarget, [string[], (lf: LatteFlow) => unknown][]>> = {
  'config-generator': [
    [['hidden_size'], (lf) => lf.generator.config.hiddenSize],
    [['num_layers'], (lf) => lf.generator.config.numLayers],
    [['num_groups'], (lf) => lf.generator.config.numGroups],
    [['latent_channels'], (lf) => lf.generator.config.latentChannels],
    [['latent_size', '0'], (lf) => lf.generator.config.latentSize[0]],
    [['latent_size', '1'], (lf) => lf.generator.config.latentSize[1]],
    [['patch_size'], (lf) => lf.generator.config.patchSize],
    [['guidance_scale'], (lf) => lf.generator.config.guidanceScale],
    [['num_steps'], (lf) => lf.generator.config.numSteps],
    [['sampler'], (lf) => lf.generator.config.sampler],
    [['time_shift'], (lf) => lf.generator.config.timeShift],
    [['prompt_template'], (lf) => lf.generator.config.promptTemplate],
    [['null_prompt'], (lf) => lf.generator.config.nullPrompt],
    ...[0, 1, 2].map((k): [string[], (lf: LatteFlow) => unknown] => [['group_boundaries', String(k)], (lf) => lf.generator.config.boundaries[k]]),
  ],
  'config-vlm': [
    [['hidden_size'], (lf) => lf.vlm.config.hiddenSize],
    [['num_hidden_layers'], (lf) => lf.vlm.config.layers],
    [['vocab_size'], (lf) => lf.vlm.config.vocabSize],
    [['max_position_embeddings'], (lf) => lf.vlm.config.maxPositions],
    [['image_token_id'], (lf) => lf.vlm.config.imageTokenId],
    [['vision_start_token_id'], (lf) => lf.vlm.config.visionStartTokenId],
    [['vision_config', 'spatial_merge_size'], (lf) => lf.vlm.config.mergeSize],
    [['vision_config', 'patch_size'], (lf) => lf.vlm.config.patchSize],
    [['vision_config', 'temporal_patch_size'], (lf) => lf.vlm.config.temporalPatchSize],
    [['vision_config', 'depth'], (lf) => lf.vlm.config.visionDepth],
  ],
  'config-vae': [
    [['latent_channels'], (lf) => lf.vae.config.latentChannels],
    [['scaling_factor'], (lf) => lf.vae.config.scalingFactor],
    [['in_channels'], (lf) => lf.vae.config.outChannels],
  ],
  'config-preprocessor': [
    [['min_pixels'], (lf) => lf.vlm.preprocessor.min_pixels],
    [['max_pixels'], (lf) => lf.vlm.preprocessor.max_pixels],
    [['patch_size'], (lf) => lf.vlm.preprocessor.patch_size],
    [['temporal_patch_size'], (lf) => lf.vlm.preprocessor.temporal_patch_size],
    [['merge_size'], (lf) => lf.vlm.preprocessor.merge_size],
    [['rescale_factor'], (lf) => lf.vlm.preprocessor.rescale_factor],
    ...[0, 1, 2].flatMap((k): [string[], (lf: LatteFlow) => unknown][] => [
      [['image_mean', String(k)], (lf) => lf.vlm.preprocessor.image_mean[k]],
      [['image_std', String(k)], (lf) => lf.vlm.preprocessor.image_std[k]],
    ]),
  ],
};

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return '(too deeply nested to print)';
  }
}

function checkConfigOracle(target: ConfigTarget, text: string | undefined, lf: LatteFlow, r: CaseResult): void {
  const oracle = CONFIG_ORACLE[target];
  if (!oracle || text === undefined) return;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    r.suspicious.push('load: accepted a config that JSON.parse rejects');
    return;
  }
  for (const [p, get] of oracle) {
    let v: unknown = doc;
    for (const k of p) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    if (v === undefined || v === null) continue; // absent: the default applies
    let got: unknown;
    try {
      got = get(lf);
    } catch {
      continue;
    }
    const key = p.join('.');
    if (typeof v === 'number') {
      if (got === v || Math.fround(v) === got) continue;
      if (typeof got === 'number' && !Number.isFinite(got) && Number.isFinite(v)) markBad(r, 'load', `${key} = ${v} in the file was loaded as ${got}`);
      else if (Number.isSafeInteger(v)) markBad(r, 'load', `${key} = ${v} in the file was loaded as ${String(got)}`);
      else r.suspicious.push(`load: ${key} = ${v} in the file was loaded as ${String(got)}`);
    } else if (typeof v === 'string') {
      if (got !== v) r.suspicious.push(`load: ${key} = ${short(safeJson(v), 40)} in the file was loaded as ${short(safeJson(got), 40)}`);
    } else {
      r.suspicious.push(`load: ${key} = ${short(safeJson(v), 40)} (not a ${typeof got}) was accepted as ${short(safeJson(got), 40)}`);
    }
  }
}

async function runConfig(ctx: Ctx, c: Case, r: CaseResult): Promise<void> {
  const dir = modelDir(ctx, c);
  const [, v] = Object.entries(c.files!)[0];
  const text = v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : undefined;
  try {
    await loadAndAsk(ctx, r, dir, EXPECTED_CODES.config, (lf) => checkConfigOracle(c.target as ConfigTarget, text, lf, r));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function runImage(ctx: Ctx, c: Case, r: CaseResult): Promise<void> {
  const bytes = c.image!;
  const d = await step(r, 'decode', () => decodeImage(bytes), EXPECTED_CODES.image);
  if (!d.ok) return;
  const img = d.value;
  const px = img.width * img.height;
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width <= 0 || img.height <= 0 || !(img.data instanceof Uint8Array || img.data instanceof Uint8ClampedArray) || (img.data.length !== px * 3 && img.data.length !== px * 4))
    markBad(r, 'decode', `decodeImage returned ${img.width}x${img.height} with ${img.data?.length} bytes (${img.data?.constructor?.name}), not RGB/RGBA`);
  const a = await step(r, 'answer', () => ctx.lf!.answer({ image: bytes, question: QUESTION, maxTokens: 2 }), EXPECTED_CODES.image);
  if (a.ok && typeof a.value !== 'string') markBad(r, 'answer', `answer resolved to ${typeof a.value}`);
}

/** Runs one case; never throws (a harness error is reported as a bad step named harness). */
export async function runCase(ctx: Ctx, c: Case): Promise<CaseResult> {
  const r = newResult(c);
  ctx.current = r;
  const rss0 = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  try {
    ctx.hook?.(c.index);
    if (c.target === 'safetensors') await runSafetensors(ctx, c, r);
    else if (c.target === 'png' || c.target === 'jpeg') await runImage(ctx, c, r);
    else await runConfig(ctx, c, r);
  } catch (e) {
    markBad(r, 'harness', `the fuzz harness itself threw: ${describeError(e)}`);
  }
  // let stray rejections of this case surface while it is still the current one
  await new Promise((res) => setImmediate(res));
  await new Promise((res) => setTimeout(res, 0));
  r.ms = Math.round(performance.now() - t0);
  r.memMb = Math.round((process.resourceUsage().maxRSS - rss0) / 1024);
  if (r.outcome !== 'bad') {
    if (r.ms > ctx.limits.slowMs) {
      r.outcome = 'slow';
      r.detail = `took ${r.ms} ms (bound ${ctx.limits.slowMs} ms)`;
    } else if (r.memMb > ctx.limits.memMb) {
      r.outcome = 'slow';
      r.detail = `raised peak memory by ${r.memMb} MiB (bound ${ctx.limits.memMb} MiB)`;
    }
  }
  ctx.current = undefined;
  return r;
}

/** Writes the case's inputs under `dir` (a model directory, a .safetensors file or an image). */
export function writeCaseInputs(c: Case, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const name = `${c.target}-s${c.seed}-i${c.index}`;
  if (c.image) {
    const p = path.join(dir, `${name}.${c.target === 'png' ? 'png' : 'jpg'}`);
    fs.writeFileSync(p, c.image);
    return p;
  }
  const p = path.join(dir, name);
  fs.rmSync(p, { recursive: true, force: true });
  fs.cpSync(TINY, p, { recursive: true });
  writeFiles(p, c.files!);
  return p;
}
