/**
 * The fuzz suite's mutators: pure functions of (base input, Rng) -> (mutated bytes, a description).
 * No library imports: what is fed to latte-flow is decided here, what it does with it in targets.ts.
 *
 *  - JSON documents (configs, the safetensors header) as a tree that can hold raw number text
 *    (2^64, 1e999, -0), raw fragments (100,000 levels of nesting) and duplicate keys.
 *  - safetensors: header-tree, header-text, framing (length field, padding, truncation) and data
 *    mutations.
 *  - PNG: chunk-level (IHDR fields, lengths, CRCs, IDAT contents, PLTE/tRNS, bombs) and bytes.
 *  - JPEG: segment-level (SOF dimensions/precision/components, DQT, DHT, SOS, DRI, lengths) and bytes.
 */
import zlib from 'node:zlib';
import type { Rng } from './rng.ts';

// ---------------------------------------------------------------------------------------------
// JSON trees

/** Text emitted verbatim (numbers JSON.parse cannot hold, deep nesting, invalid tokens). */
export class Raw {
  constructor(readonly text: string) {}
}
/** An object as ordered entries (duplicate keys allowed). */
export class Obj {
  constructor(public entries: [string, JV][]) {}
  get(key: string): JV | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i][0] === key) return this.entries[i][1];
    return undefined;
  }
  set(key: string, v: JV): void {
    const e = this.entries.find(([k]) => k === key);
    if (e) e[1] = v;
    else this.entries.push([key, v]);
  }
  delete(key: string): void {
    this.entries = this.entries.filter(([k]) => k !== key);
  }
}
export type JV = null | boolean | number | string | Raw | Obj | JV[];

export function toTree(v: unknown): JV {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : new Raw(String(v));
  if (Array.isArray(v)) return v.map(toTree);
  if (typeof v === 'object') return new Obj(Object.entries(v as object).map(([k, x]) => [k, toTree(x)]));
  return null;
}

export function clone(v: JV): JV {
  if (v instanceof Obj) return new Obj(v.entries.map(([k, x]) => [k, clone(x)]));
  if (Array.isArray(v)) return v.map(clone);
  return v;
}

export function serialize(v: JV, pretty = false, indent = ''): string {
  if (v instanceof Raw) return v.text;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : Number.isFinite(v) ? JSON.stringify(v) : String(v);
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const nl = pretty ? `\n${indent}  ` : '';
  const end = pretty ? `\n${indent}` : '';
  const sep = pretty ? ': ' : ':';
  const inner = indent + '  ';
  if (Array.isArray(v)) return v.length ? `[${nl}${v.map((x) => serialize(x, pretty, inner)).join(`,${nl}`)}${end}]` : '[]';
  return v.entries.length ? `{${nl}${v.entries.map(([k, x]) => JSON.stringify(k) + sep + serialize(x, pretty, inner)).join(`,${nl}`)}${end}}` : '{}';
}

/** Where a value sits: its container and its index there (an entry index for objects). */
export interface Loc {
  parent: Obj | JV[];
  key: number;
  path: string;
}

export function locations(root: JV, path = '', out: Loc[] = []): Loc[] {
  if (root instanceof Obj)
    root.entries.forEach(([k, v], i) => {
      const p = path ? `${path}.${k}` : k;
      out.push({ parent: root, key: i, path: p });
      locations(v, p, out);
    });
  else if (Array.isArray(root))
    root.forEach((v, i) => {
      const p = `${path}[${i}]`;
      out.push({ parent: root, key: i, path: p });
      locations(v, p, out);
    });
  return out;
}

export function getAt(l: Loc): JV {
  return l.parent instanceof Obj ? l.parent.entries[l.key][1] : l.parent[l.key];
}
export function setAt(l: Loc, v: JV): void {
  if (l.parent instanceof Obj) l.parent.entries[l.key][1] = v;
  else l.parent[l.key] = v;
}

const cache = new Map<string, string>();
function memo(key: string, f: () => string): string {
  let s = cache.get(key);
  if (s === undefined) cache.set(key, (s = f()));
  return s;
}
/** `depth` levels of arrays around `inner`. */
export function nestedArrays(depth: number, inner = ''): Raw {
  return new Raw(memo(`[${depth}`, () => '['.repeat(depth)) + inner + memo(`]${depth}`, () => ']'.repeat(depth)));
}
export function nestedObjects(depth: number, inner = '0'): Raw {
  return new Raw(memo(`{${depth}`, () => '{"a":'.repeat(depth)) + inner + memo(`}${depth}`, () => '}'.repeat(depth)));
}

export const NESTING_DEPTHS = [2, 64, 1000, 100_000] as const;

/** Numbers a config or header parser should think about (raw text beyond what a double holds). */
export const INTERESTING_NUMBERS: readonly JV[] = [
  0, -1, 1, 2, 3, 7, 8, 0.5, 1.5, -0.5, 1e300, -1e300, 1e-300, 5e-324, 1e-7, 1e7,
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 31 + 1, 2 ** 32, 2 ** 32 + 8, -(2 ** 32 + 8), 2 ** 40, 2 ** 40 + 1,
  65535, 65536, 1024, 1025, 4096, 100_000, 1e6, 1e9, 2 ** 53,
  new Raw('-0'), new Raw('9007199254740993'), new Raw('9223372036854775807'), new Raw('9223372036854775808'),
  new Raw('18446744073709551615'), new Raw('18446744073709551616'), new Raw('-9223372036854775808'), new Raw('-9223372036854775809'),
  new Raw('1e999'), new Raw('-1e999'), new Raw('1E400'), new Raw('64.0'), new Raw('6.4e1'), new Raw('1e2'),
];

export const WEIRD_STRINGS: readonly JV[] = [
  '', ' ', 'NaN', 'nan', '-NaN', 'Infinity', '-Infinity', 'inf', '1e999', '0x10', '64', '-1', 'null', 'true',
  '\u0000', 'a\u0000b', '{prompt}', '{prompt}{prompt}', '..', '/', '.', '../vlm', 'é'.repeat(100), '\u{1F600}',
  new Raw('"\\ud800"'), new Raw('"\\udfff\\ud800"'), new Raw('"\\u0000"'), new Raw('"\\uFFFF"'),
];

function hugeString(rng: Rng): JV {
  return rng.pick<JV>(['A'.repeat(1 << 20), '{prompt}'.repeat(50_000), 'é'.repeat(1 << 18), '\\'.repeat(100_000), ' '.repeat(1 << 20)]);
}
function hugeArray(rng: Rng, old: JV): JV {
  const n = rng.pick([1000, 100_000, 300_000]);
  return rng.pick<() => JV>([
    () => new Raw(memo(`ones${n}`, () => `[${Array(n).fill('1').join(',')}]`)),
    () => new Raw(memo(`empties${n}`, () => `[${Array(n).fill('[]').join(',')}]`)),
    () => {
      const item = serialize(old);
      return new Raw(`[${Array(Math.min(n, 1000)).fill(item.length > 1000 ? '0' : item).join(',')}]`);
    },
    () => new Raw(memo(`strs${n}`, () => `[${Array(n).fill('"x"').join(',')}]`)),
  ])();
}

/** A new value for `old`: related numbers, type swaps, weird numbers/strings, huge or deep values. */
export function mutateValue(rng: Rng, old: JV): { value: JV; what: string } {
  const kind = rng.weighted<string>([
    [typeof old === 'number' ? 4 : 0, 'near'],
    [4, 'number'],
    [3, 'type'],
    [typeof old === 'string' ? 3 : 1, 'string'],
    [Array.isArray(old) ? 3 : 0, 'array'],
    [1, 'huge-string'],
    [1, 'huge-array'],
    [1.5, 'nest'],
  ]);
  const say = (value: JV, what: string) => ({ value, what: `${what} ${short(serialize(value))}` });
  switch (kind) {
    case 'near': {
      const x = old as number;
      const v = rng.pick<JV>([x * 2, x + 1, x - 1, Math.floor(x / 2), -x, x * 1000, x + 0.5, x * 1e6, new Raw(`${x}.0`), new Raw(`${x}e0`), x === 0 ? 1 : x / 3]);
      return say(v, 'near:');
    }
    case 'number':
      return say(rng.pick(INTERESTING_NUMBERS), 'number:');
    case 'type': {
      const v = rng.pick<JV>([true, false, null, [], new Obj([]), [clone(old)], new Obj([['value', clone(old)]]), serialize(old), 0]);
      return say(v, 'type:');
    }
    case 'string': {
      if (typeof old === 'string' && old.length && rng.chance(0.5)) {
        const v = rng.pick([old.toUpperCase(), old + 'x', old.slice(1), ` ${old}`, old.replace(/[a-z]/, 'Z'), old + '\u0000', old.repeat(3)]);
        return say(v, 'string:');
      }
      return say(rng.pick(WEIRD_STRINGS), 'string:');
    }
    case 'array': {
      const a = (old as JV[]).map(clone);
      const v = rng.pick<() => JV>([
        () => a.slice(1),
        () => [...a, a[0] ?? 0],
        () => [],
        () => [...a, 0],
        () => [...a].reverse(),
        () => a.map(() => rng.pick(INTERESTING_NUMBERS)),
        () => (a.length ? a.map((x, i) => (i === 0 ? rng.pick(INTERESTING_NUMBERS) : x)) : [0]),
        () => Array(1000).fill(a[0] ?? 1),
      ])();
      return say(v, 'array:');
    }
    case 'huge-string':
      return say(hugeString(rng), 'huge string:');
    case 'huge-array':
      return say(hugeArray(rng, old), 'huge array:');
    default: {
      const d = rng.pick(NESTING_DEPTHS);
      const v = rng.pick([nestedArrays(d), nestedArrays(d, serialize(old)), nestedObjects(d, serialize(old))]);
      return { value: v, what: `nested ${d} levels` };
    }
  }
}

/** One structural or value mutation somewhere in `root` (in place); returns its description. */
export function mutateTree(rng: Rng, root: JV, focus?: (path: string) => boolean): string {
  let locs = locations(root);
  if (focus && rng.chance(0.7)) {
    const f = locs.filter((l) => focus(l.path));
    if (f.length) locs = f;
  }
  if (!locs.length) return 'nothing to mutate';
  const l = rng.pick(locs);
  const old = getAt(l);
  const op = rng.weighted<string>([
    [10, 'value'],
    [2, 'delete'],
    [1, 'duplicate'],
    [1, 'rename'],
    [1, 'add'],
  ]);
  if (op === 'delete') {
    if (l.parent instanceof Obj) l.parent.entries.splice(l.key, 1);
    else l.parent.splice(l.key, 1);
    return `${l.path}: deleted`;
  }
  if (op === 'duplicate' && l.parent instanceof Obj) {
    const { value, what } = mutateValue(rng, old);
    const [k] = l.parent.entries[l.key];
    const at = rng.chance(0.5) ? l.key : l.key + 1; // the duplicate before (first wins?) or after (last wins?) the original
    l.parent.entries.splice(at, 0, [k, value]);
    return `${l.path}: duplicate key (${at === l.key ? 'before' : 'after'}) ${what}`;
  }
  if (op === 'rename' && l.parent instanceof Obj) {
    const [k] = l.parent.entries[l.key];
    const nk = rng.pick([k.toUpperCase(), `${k}_`, k.replace(/_/g, ''), '', `${k}\u0000`, ' ' + k]);
    l.parent.entries[l.key][0] = nk;
    return `${l.path}: renamed to ${JSON.stringify(nk)}`;
  }
  if (op === 'add') {
    const { value, what } = mutateValue(rng, old);
    if (l.parent instanceof Obj) {
      l.parent.entries.push([rng.pick(['extra', 'text_config', 'vision_config', 'size', 'rope_parameters', '__proto__', 'constructor']), value]);
      return `${l.path}: sibling key added ${what}`;
    }
    l.parent.push(value);
    return `${l.path}: element appended ${what}`;
  }
  const { value, what } = mutateValue(rng, old);
  setAt(l, value);
  return `${l.path}: ${what}`;
}

/** Mutations of the serialized text of a JSON document. */
export function mutateJsonText(rng: Rng, text: string): { bytes: Uint8Array; what: string } {
  const enc = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
  const op = rng.int(12);
  switch (op) {
    case 0: {
      const at = rng.int(text.length);
      return { bytes: enc(text.slice(0, at)), what: `text truncated at ${at}/${text.length}` };
    }
    case 1:
      return { bytes: enc(rng.pick(['', 'null', '[]', '0', '"x"', '{}', 'true', '{"a":1}{"b":2}', ' '])), what: 'text replaced by a non-config document' };
    case 2:
      return { bytes: enc('\ufeff' + text), what: 'UTF-8 BOM prefixed' };
    case 3:
      return { bytes: enc(text + rng.pick(['}', ']', ',', 'garbage', '\u0000', '{}', '\n\n'])), what: 'trailing garbage' };
    case 4: {
      const d = rng.pick(NESTING_DEPTHS);
      return { bytes: enc(nestedArrays(d, text).text), what: `whole document nested in ${d} arrays` };
    }
    case 5: {
      const b = enc(text);
      const at = rng.int(b.length);
      b[at] = rng.pick([0x00, 0xff, 0xc0, 0x80, 0xfe, b[at] ^ (1 << rng.int(8))]);
      return { bytes: b, what: `byte ${at} flipped` };
    }
    case 6: {
      const b = enc(text);
      const at = rng.int(b.length);
      const ins = rng.pick([[0xff, 0xfe], [0xed, 0xa0, 0x80], [0xc3], [0x00], [0x22], [0x7b]]);
      return { bytes: new Uint8Array([...b.subarray(0, at), ...ins, ...b.subarray(at)]), what: `bytes ${ins.join(',')} inserted at ${at}` };
    }
    case 7:
      return { bytes: enc(text.replace(/(\d+)/, (m) => m + '0'.repeat(rng.pick([20, 400, 5000])))), what: 'first number given many more digits' };
    case 8:
      return { bytes: enc(text.replace(/(-?\d+(\.\d+)?)/, () => rng.pick(['NaN', 'Infinity', '-Infinity', '0x10', '+1', '.5', '1.', '01']))), what: 'first number replaced by a non-JSON token' };
    case 9:
      return { bytes: enc(text.replace(/"/, '\'')), what: 'first double quote made single' };
    case 10: {
      const at = rng.int(text.length);
      return { bytes: enc(text.slice(0, at) + text.slice(at + rng.range(1, 8))), what: `characters deleted at ${at}` };
    }
    default:
      return { bytes: enc(text.replace(/\s+/g, '')), what: 'whitespace removed (still valid)' };
  }
}

/** Chat templates a hostile or broken tokenizer_config.json could carry. */
export const HOSTILE_TEMPLATES: readonly string[] = [
  '{% for i in range(100000000) %}x{% endfor %}',
  '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}',
  "{{ raise_exception('refused') }}",
  '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}',
  "{{ messages[0]['content'] * 100000000 }}",
  "{{ 'x' * 1000000000 }}",
  '{{',
  '{% for m in messages %}',
  '{{ messages.__proto__.constructor }}',
  '{{ undefined_variable.attribute.deeper }}',
  '',
  '{{ bos_token }}',
  '<|im_start|>user\n{% for m in messages %}{{ m.content }}{% endfor %}<|im_end|>\n<|im_start|>assistant\n',
  '<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>{% for m in messages %}{{ m.content }}{% endfor %}',
  '<|image_pad|>'.repeat(10000),
  '{% set x = namespace(v=0) %}{% for i in range(1000000) %}{% set x.v = x.v + 1 %}{% endfor %}{{ x.v }}',
  '{{ messages | tojson }}',
  '{% if messages[1000000].content %}x{% endif %}',
];

/** Edits of a tokenizer.json (a parsed object, in place) that a hostile or broken model could carry. */
export const HOSTILE_TOKENIZER_EDITS: readonly [string, (t: Record<string, any>) => void][] = [
  ['pre-tokenizer regex (a+)+$ (catastrophic backtracking)', (t) => (t.pre_tokenizer.pretokenizers[0].pattern = { Regex: '(a+)+$' })],
  ['pre-tokenizer regex (.*)*x', (t) => (t.pre_tokenizer.pretokenizers[0].pattern = { Regex: '(.*)*x' })],
  ['pre-tokenizer regex matching the empty string', (t) => (t.pre_tokenizer.pretokenizers[0].pattern = { Regex: '' })],
  ['pre-tokenizer regex (?:)', (t) => (t.pre_tokenizer.pretokenizers[0].pattern = { Regex: '(?:)' })],
  ['pre-tokenizer regex that does not compile', (t) => (t.pre_tokenizer.pretokenizers[0].pattern = { Regex: '([' })],
  ['pre-tokenizer regex with an unknown property', (t) => (t.pre_tokenizer.pretokenizers[0].pattern = { Regex: '\\p{Foo}+' })],
  ['normalizer replacing the empty string', (t) => (t.normalizer = { type: 'Replace', pattern: { String: '' }, content: 'ab' })],
  ['normalizer replacing every character by 1000', (t) => (t.normalizer = { type: 'Replace', pattern: { Regex: '.' }, content: 'x'.repeat(1000) })],
  ['10,000 chained normalizers', (t) => (t.normalizer = { type: 'Sequence', normalizers: Array(10000).fill({ type: 'NFC' }) })],
  ['an unknown normalizer type', (t) => (t.normalizer = { type: 'NoSuchNormalizer' })],
  ['decoder replacing the empty string', (t) => (t.decoder = { type: 'Replace', pattern: { String: '' }, content: 'x' })],
  ['an unknown decoder type', (t) => (t.decoder = { type: 'NoSuchDecoder' })],
  ['an unknown model type', (t) => (t.model.type = 'NoSuchModel')],
  ['model type WordPiece with BPE data', (t) => (t.model.type = 'WordPiece')],
  ['model type Unigram with BPE data', (t) => (t.model.type = 'Unigram')],
  ['no merges', (t) => (t.model.merges = [])],
  ['an empty vocabulary', (t) => (t.model.vocab = {})],
  ['merges naming tokens not in the vocabulary', (t) => (t.model.merges = ['zz qq', 'qq zz', 'ż ź'])],
  ['an added token with id 2^32', (t) => (t.added_tokens[1].id = 2 ** 32)],
  ['an added token with id -1', (t) => (t.added_tokens[0].id = -1)],
  ['two added tokens with one id', (t) => (t.added_tokens[2].id = t.added_tokens[1].id)],
  ['an added token with empty content', (t) => (t.added_tokens[3].content = '')],
  ['100,000 added tokens', (t) => t.added_tokens.push(...Array.from({ length: 100_000 }, (_, i) => ({ id: 1000 + i, content: `<t${i}>`, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })))],
  ['a vocabulary id of 2^31', (t) => (t.model.vocab[Object.keys(t.model.vocab)[5]] = 2 ** 31)],
  ['a vocabulary of 200,000 tokens', (t) => Object.assign(t.model.vocab, Object.fromEntries(Array.from({ length: 200_000 }, (_, i) => [`tok${i}`, 400 + i])))],
  ['truncation to 1 token', (t) => (t.truncation = { direction: 'Right', max_length: 1, strategy: 'LongestFirst', stride: 0 })],
  ['padding to 100,000 tokens', (t) => (t.padding = { strategy: { Fixed: 100_000 }, direction: 'Right', pad_to_multiple_of: null, pad_id: 0, pad_type_id: 0, pad_token: '<|endoftext|>' })],
  ['a post-processor adding tokens', (t) => (t.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|im_end|>', type_id: 0 } }], pair: [], special_tokens: {} })],
];

export function short(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}...(${s.length} chars)` : s;
}

// ---------------------------------------------------------------------------------------------
// safetensors

export interface StDoc {
  header: JV;
  /** Overrides the serialized header (a text-level mutation). */
  headerBytes?: Uint8Array;
  data: Uint8Array;
  /** Overrides the 8-byte header length. */
  length?: bigint;
  /** Bytes after the header JSON that the length counts (e.g. the spaces of alignment padding). */
  pad?: Uint8Array;
  /** Cut the whole file to this many bytes. */
  truncate?: number;
  /** Bytes appended after the data. */
  trailing?: Uint8Array;
}

export function parseSt(bytes: Uint8Array): StDoc {
  const n = Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0));
  const header = toTree(JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')));
  return { header, data: bytes.slice(8 + n) };
}

export function buildSt(doc: StDoc): Uint8Array {
  const json = doc.headerBytes ?? new Uint8Array(Buffer.from(serialize(doc.header), 'utf8'));
  const pad = doc.pad ?? new Uint8Array(0);
  const trailing = doc.trailing ?? new Uint8Array(0);
  const out = new Uint8Array(8 + json.length + pad.length + doc.data.length + trailing.length);
  const dv = new DataView(out.buffer);
  const len = doc.length ?? BigInt(json.length + pad.length);
  dv.setBigUint64(0, BigInt.asUintN(64, len), true);
  out.set(json, 8);
  out.set(pad, 8 + json.length);
  out.set(doc.data, 8 + json.length + pad.length);
  out.set(trailing, 8 + json.length + pad.length + doc.data.length);
  return doc.truncate !== undefined ? out.subarray(0, Math.max(0, Math.min(doc.truncate, out.length))) : out;
}

const DTYPE_SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
export const ST_DTYPES: readonly JV[] = ['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'U16', 'U32', 'U64', 'C64', 'f32', '', 'F32 ', 'FLOAT', 32, null, ['F32'], new Obj([['F32', 1]]), new Raw('"F\\u0033\\u0032"')];

/** 687084323673 * 53695721 = 1 (mod 2^64): each factor is below 2^40, the product wraps to one element. */
const WRAP_A = 687084323673;
const WRAP_B = 53695721;

function tensorNames(doc: StDoc): string[] {
  return doc.header instanceof Obj ? doc.header.entries.filter(([k, v]) => k !== '__metadata__' && v instanceof Obj).map(([k]) => k) : [];
}
function entryOf(doc: StDoc, name: string): Obj | undefined {
  const v = doc.header instanceof Obj ? doc.header.get(name) : undefined;
  return v instanceof Obj ? v : undefined;
}
function offsetsOf(e: Obj): [number, number] | undefined {
  const o = e.get('data_offsets');
  return Array.isArray(o) && typeof o[0] === 'number' && typeof o[1] === 'number' ? [o[0], o[1]] : undefined;
}
function numelOf(e: Obj): number {
  const s = e.get('shape');
  return Array.isArray(s) ? s.reduce<number>((a, d) => a * (typeof d === 'number' ? d : NaN), 1) : NaN;
}

/** The header bytes as they will be written. */
function headerText(doc: StDoc): Uint8Array {
  return doc.headerBytes ?? new Uint8Array(Buffer.from(serialize(doc.header), 'utf8'));
}

/** One mutation of a parsed safetensors file (in place); returns its description. */
export function mutateSt(rng: Rng, doc: StDoc): string {
  const names = tensorNames(doc);
  const name = names.length ? rng.pick(names) : '';
  const e = entryOf(doc, name);
  let kind = rng.weighted<string>([
    [3, 'shape'],
    [2, 'nesting'],
    [2, 'dtype'],
    [2, 'offsets'],
    [1, 'entry'],
    [1, 'name'],
    [1, 'metadata'],
    [1, 'tree'],
    [1, 'length'],
    [1, 'pad'],
    [1, 'truncate'],
    [1, 'text'],
    [1, 'duplicate'],
    [1.5, 'data'],
    [0.5, 'root'],
  ]);
  // after a text-level mutation the tree is no longer what is written: only text/framing/data mutations apply
  if (doc.headerBytes && !['length', 'pad', 'truncate', 'text', 'data'].includes(kind)) kind = 'text';
  switch (kind) {
    case 'shape': {
      if (!e) return 'no tensor';
      const old = e.get('shape');
      const n = numelOf(e);
      const o = offsetsOf(e);
      const dims: JV[] = Array.isArray(old) ? old : [];
      const v = rng.pick<() => [JV, string]>([
        () => [[WRAP_A, WRAP_B], '(wraps to 1 element)'],
        () => [[WRAP_A, WRAP_B, n], `(wraps to the ${n} elements the data holds)`],
        () => [[WRAP_A, WRAP_B * n], `(wraps to the ${n} elements the data holds)`],
        () => [[WRAP_B * n, WRAP_A], `(wraps to the ${n} elements the data holds)`],
        () => [[2 ** 32, 2 ** 32], '(wraps to 0 elements)'],
        () => [[2 ** 24, 2 ** 40, 5], '(wraps to 0 elements)'],
        () => [[65536, 65536, 65536, 65536], '(wraps to 0 elements)'],
        () => [[2 ** 40], ''],
        () => [[2 ** 40 + 1], ''],
        () => [[2 ** 41], ''],
        () => [[2 ** 21, 2 ** 21, 2 ** 21], ''],
        () => [[-1], ''],
        () => [[n, -1], ''],
        () => [[-n], ''],
        () => [[1.5], ''],
        () => [[String(n)], ''],
        () => [[1e20], ''],
        () => [[new Raw('9223372036854775808')], ''],
        () => [[new Raw('18446744073709551615')], ''],
        () => [[new Raw('18446744073709551616')], ''],
        () => [[new Raw(`${n}.0`)], ''],
        () => [[], '(scalar)'],
        () => [[0], ''],
        () => [[n, 0], ''],
        () => [Array(9).fill(1).concat([n]), '(10 dims)'],
        () => [Array(100).fill(1).concat([n]), '(101 dims)'],
        () => [[...dims].reverse(), '(dims reversed, same size)'],
        () => [[n], '(flattened, same size)'],
        () => [[n, 1], '(a trailing 1, same size)'],
        () => [[1, ...dims], '(a leading 1, same size)'],
        () => [dims.length > 1 && typeof dims[0] === 'number' && dims[0] % 2 === 0 ? [(dims[0] as number) / 2, ...dims.slice(1), 2] : [n / 2, 2], '(reshaped, same size)'],
        () => [dims.map((d) => (typeof d === 'number' ? d + 1 : d)), '(each dim + 1)'],
        () => [new Obj([['0', n]]), '(an object)'],
        () => [String(n), '(a string)'],
        () => [null, '(null)'],
      ])();
      e.set('shape', v[0]);
      // sometimes keep the offsets consistent with a zero-element shape
      if (o && /0 elements/.test(v[1]) && rng.chance(0.7)) e.set('data_offsets', [o[0], o[0]]);
      return `${name}: shape ${short(serialize(old ?? null))} -> ${short(serialize(v[0]))} ${v[1]}`.trim();
    }
    case 'nesting': {
      if (!e) return 'no tensor';
      const d = rng.pick(NESTING_DEPTHS);
      const field = rng.pick(['dtype', 'shape', 'data_offsets', '(entry)', '(metadata)']);
      if (field === '(entry)') {
        (doc.header as Obj).set(name, nestedArrays(d));
      } else if (field === '(metadata)') {
        const m = (doc.header as Obj).get('__metadata__');
        if (m instanceof Obj) m.set('nested', nestedArrays(d, '"x"'));
        else (doc.header as Obj).entries.unshift(['__metadata__', nestedObjects(d, '"x"')]);
      } else if (field === 'shape' && rng.chance(0.5)) {
        e.set('shape', nestedArrays(d, String(numelOf(e))));
      } else {
        e.set(field, rng.chance(0.5) ? nestedArrays(d) : nestedObjects(d));
      }
      return `${name}: ${field} nested ${d} levels deep`;
    }
    case 'dtype': {
      if (!e) return 'no tensor';
      const old = e.get('dtype');
      const v = rng.pick(ST_DTYPES);
      e.set('dtype', v);
      let how = '';
      // keep the byte count consistent with the new element size (shape scaled)
      if (typeof v === 'string' && typeof old === 'string' && DTYPE_SIZE[v] && DTYPE_SIZE[old] && rng.chance(0.6)) {
        const ratio = DTYPE_SIZE[old] / DTYPE_SIZE[v];
        const n = numelOf(e);
        if (Number.isInteger(n * ratio) && n * ratio > 0) {
          e.set('shape', [n * ratio]);
          how = ` (shape [${n * ratio}] keeps the byte count)`;
        }
      }
      return `${name}: dtype ${short(serialize(old ?? null))} -> ${short(serialize(v))}${how}`;
    }
    case 'offsets': {
      if (!e) return 'no tensor';
      const o = offsetsOf(e);
      if (!o) return 'no offsets';
      const [a, b] = o;
      const L = doc.data.length;
      const other = names.length > 1 ? entryOf(doc, rng.pick(names.filter((x) => x !== name))) : undefined;
      const oo = other ? offsetsOf(other) : undefined;
      const v = rng.pick<() => [JV, string]>([
        () => [[a + 1, b + 1], 'shifted +1'],
        () => [[a - 1, b - 1], 'shifted -1'],
        () => [[a, b + 1], 'end +1'],
        () => [[a, b - 1], 'end -1'],
        () => [[a + 1, b], 'begin +1'],
        () => [[b, a], 'reversed'],
        () => [[L - (b - a) + 1, L + 1], 'one past the end'],
        () => [[L - (b - a), L], 'moved to the end (overlaps the last tensor)'],
        () => [[a, L + 1], 'end past the file'],
        () => [[a, new Raw('18446744073709551615')], 'end 2^64-1'],
        () => [[new Raw('18446744073709551615'), new Raw('18446744073709551615')], 'both 2^64-1'],
        () => [[new Raw('18446744073709551614'), b - a - 2], 'begin wraps around'],
        () => [[-1, b], 'negative'],
        () => [[a + 0.5, b + 0.5], 'fractional'],
        () => [[String(a), String(b)], 'strings'],
        () => [[a], 'one element'],
        () => [[a, b, b], 'three elements'],
        () => [[], 'empty'],
        () => [oo ? [oo[0], oo[0] + (b - a)] : [0, b - a], 'aliasing another tensor (overlap)'],
        () => [oo ? [...oo] : [a, b], 'copied from another tensor'],
      ])();
      e.set('data_offsets', v[0]);
      return `${name}: data_offsets [${a}, ${b}] -> ${short(serialize(v[0]))} (${v[1]})`;
    }
    case 'entry': {
      if (!e) return 'no tensor';
      const v = rng.pick<() => [JV, string]>([
        () => [(e.delete('dtype'), e), 'dtype removed'],
        () => [(e.delete('shape'), e), 'shape removed'],
        () => [(e.delete('data_offsets'), e), 'data_offsets removed'],
        () => [(e.set('extra', rng.pick(INTERESTING_NUMBERS)), e), 'an extra field'],
        () => [[], 'an array'],
        () => ['F32', 'a string'],
        () => [1, 'a number'],
        () => [null, 'null'],
        () => [new Obj([]), 'empty'],
      ])();
      (doc.header as Obj).set(name, v[0]);
      return `${name}: entry ${v[1]}`;
    }
    case 'name': {
      if (!doc.header || !(doc.header instanceof Obj)) return 'no header object';
      const i = doc.header.entries.findIndex(([k]) => k === name);
      if (i < 0) return 'no tensor';
      const nn = rng.pick([`${name}x`, name.toUpperCase(), '', '\u0000', `${name}\u0000`, 'x'.repeat(1 << 16), '__metadata__', name.replace(/\./g, '/'), 'é' + name]);
      const drop = rng.chance(0.3);
      if (drop) doc.header.entries.splice(i, 1);
      else doc.header.entries[i][0] = nn;
      return drop ? `${name}: removed` : `${name}: renamed to ${short(JSON.stringify(nn))}`;
    }
    case 'metadata': {
      if (!(doc.header instanceof Obj)) return 'no header object';
      const m = doc.header.get('__metadata__');
      const v = rng.pick<() => [JV, string]>([
        () => [null, 'null'],
        () => [[], 'an array'],
        () => ['x', 'a string'],
        () => [new Obj([['format', rng.pick<JV>(['tf', 'pt', '', 1, null, 'latte-flow-generator'])]]), 'format changed'],
        () => [new Obj([['format_version', rng.pick<JV>(['2', '999', '-1', 'x', '1.0', 2, ''])], ['format', m instanceof Obj ? (m.get('format') ?? 'pt') : 'pt']]), 'format_version changed'],
        () => [new Obj([['k', 'v'.repeat(1 << 20)]]), 'a 1 MiB value'],
        () => [new Obj(Array.from({ length: 10000 }, (_, i) => [`k${i}`, String(i)] as [string, JV])), '10,000 keys'],
        () => [new Obj([['n', 1], ['b', true], ['o', new Obj([])]]), 'non-string values'],
      ])();
      if (m === undefined) doc.header.entries.unshift(['__metadata__', v[0]]);
      else doc.header.set('__metadata__', v[0]);
      return `__metadata__: ${v[1]}`;
    }
    case 'tree':
      return `header: ${mutateTree(rng, doc.header)}`;
    case 'length': {
      const n = BigInt(headerText(doc).length);
      const total = 8n + n + BigInt(doc.data.length);
      const v = rng.pick<[bigint, string]>([
        [n + 1n, 'n + 1'],
        [n - 1n, 'n - 1'],
        [0n, '0'],
        [1n, '1'],
        [2n ** 64n - 1n, '2^64 - 1'],
        [2n ** 63n, '2^63'],
        [2n ** 64n - 8n, '2^64 - 8 (8 + n wraps to 0)'],
        [(100n << 20n) + 1n, '100 MiB + 1'],
        [100n << 20n, '100 MiB'],
        [total - 8n, 'the whole rest of the file'],
        [total - 7n, 'one past the end of the file'],
        [BigInt(rng.u32()), 'random'],
      ]);
      doc.length = v[0];
      return `header length ${n} -> ${v[0]} (${v[1]})`;
    }
    case 'pad': {
      const json = headerText(doc).length;
      const to8 = (8 - ((8 + json) % 8)) % 8 || 8;
      const v = rng.pick<[Uint8Array, string]>([
        [new Uint8Array(to8).fill(0x20), 'spaces to 8-byte alignment (valid)'],
        [new Uint8Array(1000).fill(0x20), '1000 spaces (valid)'],
        [new Uint8Array(to8).fill(0x0a), 'newlines (valid JSON whitespace)'],
        [new Uint8Array(to8).fill(0x00), 'NULs'],
        [new Uint8Array([0x20, 0x7d]), 'a space and a stray }'],
        [new Uint8Array(to8).fill(0x09), 'tabs (valid JSON whitespace)'],
      ]);
      doc.pad = v[0];
      return `header padded with ${v[1]}`;
    }
    case 'truncate': {
      const json = headerText(doc).length;
      const total = 8 + json + doc.data.length;
      const v = rng.pick<[number, string]>([
        [0, 'empty file'],
        [7, '7 bytes'],
        [8, 'the length only'],
        [8 + rng.int(json), 'inside the header'],
        [8 + json, 'at the end of the header'],
        [8 + json + 1 + rng.int(doc.data.length - 1), 'inside the data'],
        [total - 1, 'one byte short'],
        [total - 4096 - rng.int(4096), 'a page or two short'],
      ]);
      doc.truncate = v[0];
      return `file truncated to ${v[0]} of ${total} bytes (${v[1]})`;
    }
    case 'text': {
      const r = mutateJsonText(rng, Buffer.from(headerText(doc)).toString('utf8'));
      doc.headerBytes = r.bytes;
      return `header text: ${r.what}`;
    }
    case 'duplicate': {
      if (!e || !(doc.header instanceof Obj)) return 'no tensor';
      const o = offsetsOf(e);
      const dup = clone(e) as Obj;
      const what = rng.pick(['same', 'other offsets', 'other shape', 'dtype key twice', 'metadata twice']);
      if (what === 'other offsets' && o) dup.set('data_offsets', [0, o[1] - o[0]]);
      if (what === 'other shape') dup.set('shape', [numelOf(e)]);
      if (what === 'dtype key twice') {
        e.entries.push(['dtype', rng.pick(['F16', 'I32', 'BF16', 'F64'])]);
        return `${name}: "dtype" key given twice`;
      }
      if (what === 'metadata twice') {
        doc.header.entries.push(['__metadata__', new Obj([['format', 'tf']])]);
        return '__metadata__ given twice';
      }
      const i = doc.header.entries.findIndex(([k]) => k === name);
      doc.header.entries.splice(i + (rng.chance(0.5) ? 1 : 0), 0, [name, dup]);
      return `${name}: duplicate key (${what})`;
    }
    case 'data': {
      if (!e) return 'no tensor';
      const o = offsetsOf(e);
      if (!o || o[1] > doc.data.length) return 'no data';
      const data = (doc.data = doc.data.slice());
      const dt = e.get('dtype');
      const [a, b] = o;
      if (dt !== 'F32' || rng.chance(0.15)) {
        for (let k = 0; k < 8 && b > a; k++) data[a + rng.int(b - a)] ^= 1 << rng.int(8);
        return `${name}: data bytes flipped`;
      }
      const f = new Float32Array(data.buffer, data.byteOffset + a, (b - a) / 4);
      const v = rng.pick<[number, string]>([
        [NaN, 'NaN'],
        [Infinity, 'Inf'],
        [-Infinity, '-Inf'],
        [3.4e38, '3.4e38'],
        [1e-45, 'denormals'],
        [0, 'zeros'],
      ]);
      const all = rng.chance(0.5);
      if (all) f.fill(v[0]);
      else f[rng.int(f.length)] = v[0];
      return `${name}: ${all ? 'every value' : 'one value'} set to ${v[1]}`;
    }
    default: {
      const v = rng.pick<[JV, string]>([
        [[], 'an array'],
        ['x', 'a string'],
        [1, 'a number'],
        [null, 'null'],
        [new Obj([]), 'empty (no tensors)'],
        [new Obj([['__metadata__', new Obj([])]]), 'metadata only'],
      ]);
      doc.header = v[0];
      return `header replaced by ${v[1]}`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PNG

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface PngChunk {
  type: string;
  data: Uint8Array;
  /** Written instead of data.length. */
  length?: number;
  /** Written instead of the correct CRC. */
  crc?: number;
}

export function parsePng(bytes: Uint8Array): PngChunk[] {
  const chunks: PngChunk[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 8;
  while (p + 12 <= bytes.length) {
    const len = dv.getUint32(p);
    const type = String.fromCharCode(...bytes.subarray(p + 4, p + 8));
    chunks.push({ type, data: bytes.slice(p + 8, p + 8 + len) });
    p += 12 + len;
  }
  return chunks;
}

export function buildPng(chunks: PngChunk[]): Uint8Array {
  const parts: Uint8Array[] = [PNG_SIGNATURE];
  for (const c of chunks) {
    const head = new Uint8Array(8);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, (c.length ?? c.data.length) >>> 0);
    for (let i = 0; i < 4; i++) head[4 + i] = c.type.charCodeAt(i) & 0xff;
    const crc = new Uint8Array(4);
    new DataView(crc.buffer).setUint32(0, c.crc ?? crc32([head.subarray(4), c.data]));
    parts.push(head, c.data, crc);
  }
  return Buffer.concat(parts);
}

/** A PNG from raw pixel bytes (filter 0 per row), for bases and bombs. */
export function encodeRawPng(w: number, h: number, depth: number, colorType: number, rowBytes: (y: number) => Uint8Array, extra: PngChunk[] = []): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, w);
  dv.setUint32(4, h);
  ihdr.set([depth, colorType, 0, 0, 0], 8);
  const rows: Uint8Array[] = [];
  for (let y = 0; y < h; y++) rows.push(new Uint8Array([0]), rowBytes(y));
  const idat = new Uint8Array(zlib.deflateSync(Buffer.concat(rows)));
  return buildPng([{ type: 'IHDR', data: ihdr }, ...extra, { type: 'IDAT', data: idat }, { type: 'IEND', data: new Uint8Array(0) }]);
}

function channelsOf(colorType: number): number {
  return ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType] ?? 1;
}

/** A zlib stream of `n` zero bytes (rows of filter 0 and black pixels). */
function zeroDeflate(n: number): Uint8Array {
  return new Uint8Array(zlib.deflateSync(Buffer.alloc(n), { level: 9 }));
}

/** One structural or byte-level mutation of a PNG; returns bytes and a description. */
export function mutatePng(rng: Rng, base: Uint8Array): { bytes: Uint8Array; what: string } {
  const chunks = parsePng(base);
  const ihdr = chunks.find((c) => c.type === 'IHDR')!;
  const hd = new DataView(ihdr.data.buffer, ihdr.data.byteOffset, 13);
  const W = hd.getUint32(0);
  const H = hd.getUint32(4);
  const fixCrc = rng.chance(0.9);
  const kind = rng.weighted<string>([
    [3, 'dims'],
    [2, 'depth-color'],
    [1, 'ihdr-other'],
    [2, 'truncate'],
    [2, 'length'],
    [1, 'crc'],
    [3, 'idat'],
    [1.5, 'plte'],
    [1, 'chunks'],
    [1, 'bomb'],
    [2, 'bytes'],
  ]);
  const done = (what: string) => {
    if (!fixCrc) for (const c of chunks) if (c.crc === undefined && rng.chance(0.3)) c.crc = rng.u32();
    return { bytes: buildPng(chunks), what: fixCrc ? what : `${what}; some CRCs wrong` };
  };
  switch (kind) {
    case 'dims': {
      const vals = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 65535, 65536, 100_000, 1_000_000, 20_000, W + 1, W - 1, H * 1000, 8193];
      const which = rng.pick(['width', 'height', 'both']);
      const w = which === 'height' ? W : rng.pick(vals);
      const h = which === 'width' ? H : rng.pick(vals);
      hd.setUint32(0, w >>> 0);
      hd.setUint32(4, h >>> 0);
      return done(`IHDR ${W}x${H} -> ${w}x${h}`);
    }
    case 'depth-color': {
      const depth = rng.pick([0, 1, 2, 4, 8, 16, 3, 7, 32, 255]);
      const color = rng.pick([0, 2, 3, 4, 6, 1, 5, 7, 255]);
      const what = rng.pick(['depth', 'color', 'both']);
      const old = `${ihdr.data[8]}/${ihdr.data[9]}`;
      if (what !== 'color') ihdr.data[8] = depth;
      if (what !== 'depth') ihdr.data[9] = color;
      return done(`IHDR bit depth/colour type ${old} -> ${ihdr.data[8]}/${ihdr.data[9]}`);
    }
    case 'ihdr-other': {
      const at = rng.pick([10, 11, 12]);
      const v = rng.pick([1, 2, 255]);
      ihdr.data[at] = v;
      const field = { 10: 'compression', 11: 'filter', 12: 'interlace' }[at];
      if (rng.chance(0.2)) ihdr.data = ihdr.data.subarray(0, rng.int(13));
      return done(`IHDR ${field} method -> ${v}${ihdr.data.length < 13 ? ` and IHDR cut to ${ihdr.data.length} bytes` : ''}`);
    }
    case 'truncate': {
      const full = buildPng(chunks);
      const at = rng.chance(0.5) ? rng.int(full.length) : rng.pick([0, 4, 8, 16, 33, full.length - 12, full.length - 1]);
      return { bytes: full.subarray(0, Math.max(0, at)), what: `truncated to ${at} of ${full.length} bytes` };
    }
    case 'length': {
      const c = rng.pick(chunks);
      const v = rng.pick([c.data.length + 1, c.data.length - 1, 0, 2 ** 31 - 1, 2 ** 32 - 1, rng.u32(), c.data.length + 4]);
      c.length = v >>> 0;
      return done(`${c.type} length ${c.data.length} -> ${c.length}`);
    }
    case 'crc': {
      const c = rng.pick(chunks);
      c.crc = rng.u32();
      return { bytes: buildPng(chunks), what: `${c.type} CRC wrong` };
    }
    case 'idat': {
      const i = chunks.findIndex((c) => c.type === 'IDAT');
      const c = chunks[i];
      const raw = new Uint8Array(zlib.inflateSync(c.data));
      const v = rng.pick<() => string>([
        () => {
          for (let k = 0; k < 4; k++) c.data[rng.int(c.data.length)] ^= 1 << rng.int(8);
          return 'compressed bytes flipped';
        },
        () => ((c.data = rng.bytes(c.data.length)), 'random bytes'),
        () => ((c.data = new Uint8Array(zlib.deflateSync(raw.subarray(0, rng.int(raw.length))))), 'too little image data'),
        () => ((c.data = new Uint8Array(zlib.deflateSync(Buffer.concat([raw, Buffer.alloc(rng.pick([1, 100, 1 << 16]))])))), 'too much image data'),
        () => {
          const r = raw.slice();
          const stride = raw.length / H;
          r[Math.floor(rng.int(H) * stride)] = rng.pick([5, 6, 255, 4, 3]);
          c.data = new Uint8Array(zlib.deflateSync(r));
          return 'a bad or edge-case filter byte';
        },
        () => ((c.data = new Uint8Array(0)), 'empty IDAT'),
        () => {
          const parts: PngChunk[] = [];
          for (let p = 0; p < c.data.length; p += 7) parts.push({ type: 'IDAT', data: c.data.slice(p, p + 7) });
          chunks.splice(i, 1, ...parts);
          return 'IDAT split into 7-byte chunks (valid)';
        },
        () => ((c.data = new Uint8Array(zlib.deflateRawSync(raw))), 'raw deflate without the zlib header'),
        () => ((c.data = c.data.subarray(0, c.data.length - 4)), 'zlib checksum cut off'),
        () => ((c.data = new Uint8Array(zlib.gzipSync(raw))), 'gzip instead of zlib'),
      ])();
      return done(`IDAT: ${v}`);
    }
    case 'plte': {
      const color = ihdr.data[9];
      const at = chunks.findIndex((c) => c.type === 'PLTE');
      const v = rng.pick<() => string>([
        () => (at >= 0 ? (chunks.splice(at, 1), 'PLTE removed') : ((ihdr.data[9] = 3), 'colour type 3 without PLTE')),
        () => (chunks.splice(1, 0, { type: 'PLTE', data: rng.bytes(rng.pick([0, 1, 3, 4, 768, 771, 3 * 300])) }), 'a PLTE of odd size'),
        () => (chunks.splice(1, 0, { type: 'PLTE', data: rng.bytes(6) }), ihdr.data[9] = 3, ihdr.data[8] = 8, 'colour type 3 with a 2-entry PLTE (indices out of range)'),
        () => (chunks.splice(at >= 0 ? at + 1 : 1, 0, { type: 'tRNS', data: rng.bytes(rng.pick([0, 1, 2, 6, 300])) }), 'a tRNS of odd size'),
        () => (chunks.splice(chunks.length - 1, 0, { type: 'PLTE', data: rng.bytes(12) }), 'PLTE after IDAT'),
      ])();
      return done(`${v} (colour type was ${color})`);
    }
    case 'chunks': {
      const v = rng.pick<() => string>([
        () => (chunks.splice(1, 0, { type: 'IHDR', data: ihdr.data.slice() }), 'IHDR twice'),
        () => (chunks.push(chunks.shift()!), 'IHDR last'),
        () => (chunks.splice(1, 0, { type: 'ABCD', data: rng.bytes(10) }), 'an unknown critical chunk'),
        () => (chunks.splice(1, 0, { type: 'tEXt', data: new Uint8Array(1 << 20).fill(0x41) }), 'a 1 MiB tEXt without a NUL'),
        () => (chunks.splice(1, 0, { type: 'iCCP', data: Buffer.concat([Buffer.from('icc\u0000\u0000'), zlib.deflateSync(Buffer.alloc(32 << 20))]) }), 'iCCP inflating to 32 MiB'),
        () => (chunks.splice(1, 0, { type: 'zTXt', data: Buffer.concat([Buffer.from('k\u0000\u0000'), zlib.deflateSync(Buffer.alloc(32 << 20))]) }), 'zTXt inflating to 32 MiB'),
        () => (chunks.splice(1, 0, { type: 'acTL', data: new Uint8Array([0, 0, 0, 2, 0, 0, 0, 0]) }, { type: 'fcTL', data: rng.bytes(26) }), 'APNG chunks'),
        () => (chunks.splice(chunks.findIndex((c) => c.type === 'IDAT'), 1), 'IDAT removed'),
        () => (chunks.pop(), 'IEND removed'),
        () => (chunks.splice(1, 0, { type: 'sBIT', data: rng.bytes(rng.pick([0, 1, 3, 4, 9])) }, { type: 'gAMA', data: new Uint8Array(4) }, { type: 'pHYs', data: rng.bytes(3) }), 'odd ancillary chunks'),
        () => (chunks.push({ type: 'IDAT', data: rng.bytes(100) }), 'IDAT after IEND'),
      ])();
      return done(v);
    }
    case 'bomb': {
      const [w, h, depth, color] = rng.pick<[number, number, number, number]>([
        [4000, 4000, 8, 0],
        [8000, 8000, 8, 0],
        [9000, 9000, 1, 0],
        [20000, 20000, 1, 0],
        [2000, 2000, 16, 6],
        [60000, 1, 8, 2],
        [1, 60000, 8, 2],
        [16384, 16384, 1, 3],
      ]);
      const ch = channelsOf(color);
      const rowBytes = Math.ceil((w * ch * depth) / 8) + 1;
      const real = rng.chance(0.6); // real data for every row, or a tiny stream that ends early
      const rows = real ? h : Math.min(h, 4);
      const idat = zeroDeflate(rowBytes * rows);
      const ihdrData = new Uint8Array(13);
      const dv = new DataView(ihdrData.buffer);
      dv.setUint32(0, w);
      dv.setUint32(4, h);
      ihdrData.set([depth, color, 0, 0, 0], 8);
      const plte: PngChunk[] = color === 3 ? [{ type: 'PLTE', data: new Uint8Array(6) }] : [];
      const out = buildPng([{ type: 'IHDR', data: ihdrData }, ...plte, { type: 'IDAT', data: idat }, { type: 'IEND', data: new Uint8Array(0) }]);
      return { bytes: out, what: `bomb: ${w}x${h} depth ${depth} colour ${color}, ${real ? 'all rows present' : 'only 4 rows of data'} (${out.length} bytes)` };
    }
    default: {
      const b = buildPng(chunks);
      const n = rng.pick([1, 2, 4, 16]);
      const from = rng.chance(0.5) ? 8 : 0;
      for (let k = 0; k < n; k++) b[from + rng.int(b.length - from)] ^= 1 << rng.int(8);
      return { bytes: b, what: `${n} random bit flips${from ? ' (after the signature)' : ''}` };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JPEG

export interface JpegSeg {
  marker: number;
  /** Segment payload without the length field (empty for SOI/EOI/RSTn). */
  data: Uint8Array;
  /** Written instead of data.length + 2. */
  length?: number;
  /** Entropy-coded data after an SOS. */
  ecs?: Uint8Array;
}

const STANDALONE = (m: number) => m === 0xd8 || m === 0xd9 || m === 0x01 || (m >= 0xd0 && m <= 0xd7);

export function parseJpeg(bytes: Uint8Array): JpegSeg[] {
  const segs: JpegSeg[] = [];
  let p = 0;
  while (p + 1 < bytes.length) {
    if (bytes[p] !== 0xff) throw new Error(`parseJpeg: no marker at ${p}`);
    const m = bytes[p + 1];
    p += 2;
    if (STANDALONE(m)) {
      segs.push({ marker: m, data: new Uint8Array(0) });
      if (m === 0xd9) break;
      continue;
    }
    const len = (bytes[p] << 8) | bytes[p + 1];
    const seg: JpegSeg = { marker: m, data: bytes.slice(p + 2, p + len) };
    p += len;
    if (m === 0xda) {
      let q = p;
      while (q + 1 < bytes.length && !(bytes[q] === 0xff && bytes[q + 1] !== 0x00 && !(bytes[q + 1] >= 0xd0 && bytes[q + 1] <= 0xd7))) q++;
      seg.ecs = bytes.slice(p, q);
      p = q;
    }
    segs.push(seg);
  }
  return segs;
}

export function buildJpeg(segs: JpegSeg[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of segs) {
    parts.push(new Uint8Array([0xff, s.marker]));
    if (STANDALONE(s.marker)) continue;
    const len = s.length ?? s.data.length + 2;
    parts.push(new Uint8Array([(len >> 8) & 0xff, len & 0xff]), s.data);
    if (s.ecs) parts.push(s.ecs);
  }
  return Buffer.concat(parts);
}

const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/** One structural or byte-level mutation of a JPEG; returns bytes and a description. */
export function mutateJpeg(rng: Rng, base: Uint8Array): { bytes: Uint8Array; what: string } {
  const segs = parseJpeg(base);
  const sofAt = segs.findIndex((s) => isSof(s.marker));
  const sof = segs[sofAt];
  const sd = new DataView(sof.data.buffer, sof.data.byteOffset, sof.data.byteLength);
  const H = sd.getUint16(1);
  const W = sd.getUint16(3);
  const sosAt = segs.findIndex((s) => s.marker === 0xda);
  const sos = segs[sosAt];
  const kind = rng.weighted<string>([
    [3, 'dims'],
    [1, 'precision'],
    [1, 'sof-type'],
    [2, 'components'],
    [1.5, 'dqt'],
    [2, 'dht'],
    [1.5, 'sos'],
    [1, 'dri'],
    [2, 'length'],
    [2, 'truncate'],
    [2, 'ecs'],
    [1, 'segments'],
    [1, 'app'],
    [2, 'bytes'],
  ]);
  const done = (what: string) => ({ bytes: buildJpeg(segs), what });
  switch (kind) {
    case 'dims': {
      const vals = [0, 1, 2, 65535, 65500, 8192, 16384, 30000, 10000, W * 100, H + 1, W - 1, rng.int(65536)];
      const which = rng.pick(['width', 'height', 'both']);
      const w = which === 'height' ? W : rng.pick(vals);
      const h = which === 'width' ? H : rng.pick(vals);
      sd.setUint16(1, h & 0xffff);
      sd.setUint16(3, w & 0xffff);
      return done(`SOF ${W}x${H} -> ${w & 0xffff}x${h & 0xffff}`);
    }
    case 'precision': {
      const v = rng.pick([0, 1, 12, 16, 255]);
      sof.data[0] = v;
      return done(`SOF precision 8 -> ${v}`);
    }
    case 'sof-type': {
      const v = rng.pick([0xc1, 0xc2, 0xc3, 0xc5, 0xc9, 0xca, 0xcb, 0xcd, 0xcf]);
      const old = sof.marker;
      sof.marker = v;
      return done(`SOF marker ${old.toString(16)} -> ${v.toString(16)}`);
    }
    case 'components': {
      const n = sof.data[5];
      const v = rng.pick<() => string>([
        () => ((sof.data[5] = rng.pick([0, 1, 2, 4, 255])), `component count ${n} -> ${sof.data[5]} (payload unchanged)`),
        () => {
          sof.data = sof.data.slice(0, 6 + 3);
          sof.data[5] = 1;
          return 'one component (grey), scan unchanged';
        },
        () => {
          const extra = new Uint8Array([4, 0x11, 0]);
          sof.data = new Uint8Array([...sof.data, ...extra]);
          sof.data[5] = n + 1;
          return 'a fourth component (CMYK-like)';
        },
        () => ((sof.data[7] = rng.pick([0x00, 0x44, 0xff, 0x41, 0x14, 0x33, 0x10, 0x01])), `component 1 sampling factors -> 0x${sof.data[7].toString(16)}`),
        () => ((sof.data[10] = rng.pick([0x00, 0x44, 0xff, 0x22, 0x33])), `component 2 sampling factors -> 0x${sof.data[10].toString(16)}`),
        () => ((sof.data[8] = rng.pick([1, 3, 4, 15, 255])), `component 1 quant table -> ${sof.data[8]}`),
        () => ((sof.data[9] = sof.data[6]), 'two components with the same id'),
      ])();
      return done(`SOF ${v}`);
    }
    case 'dqt': {
      const i = segs.findIndex((s) => s.marker === 0xdb);
      const q = segs[i];
      const v = rng.pick<() => string>([
        () => ((q.data[0] = rng.pick([0x04, 0x0f, 0x10, 0x13, 0xff])), `table id/precision byte -> 0x${q.data[0].toString(16)}`),
        () => (q.data.fill(0, 1, 65), 'all zero quantisers'),
        () => (q.data.fill(0xff, 1, 65), 'all 255 quantisers'),
        () => ((q.data = q.data.subarray(0, rng.int(q.data.length))), 'truncated'),
        () => (segs.splice(i, 1), 'removed'),
      ])();
      return done(`DQT ${v}`);
    }
    case 'dht': {
      const ids = segs.map((s, k) => (s.marker === 0xc4 ? k : -1)).filter((k) => k >= 0);
      const i = rng.pick(ids);
      const h = segs[i];
      const v = rng.pick<() => string>([
        () => ((h.data[0] = rng.pick([0x02, 0x04, 0x14, 0x20, 0xff])), `class/id byte -> 0x${h.data[0].toString(16)}`),
        () => (h.data.fill(0xff, 1, 17), 'code counts all 255 (more symbols than given)'),
        () => (h.data.fill(0, 1, 17), 'no codes'),
        () => {
          h.data[1] = 2;
          h.data[2] = 2;
          return 'an over-full code (4 codes of 1-2 bits)';
        },
        () => ((h.data = h.data.subarray(0, rng.int(h.data.length))), 'truncated'),
        () => (segs.splice(i, 1), 'removed'),
        () => {
          for (let k = 17; k < h.data.length; k++) h.data[k] = rng.int(256);
          return 'random symbols';
        },
      ])();
      return done(`DHT ${v}`);
    }
    case 'sos': {
      const v = rng.pick<() => string>([
        () => ((sos.data[0] = rng.pick([0, 4, 255, 2])), `component count -> ${sos.data[0]}`),
        () => ((sos.data[1] = rng.pick([0, 9, 255])), `component selector -> ${sos.data[1]}`),
        () => ((sos.data[2] = rng.pick([0x44, 0xff, 0x0f, 0xf0])), `table selectors -> 0x${sos.data[2].toString(16)}`),
        () => {
          const at = sos.data.length - 3;
          sos.data[at] = rng.pick([1, 63, 64, 255]);
          sos.data[at + 1] = rng.pick([0, 63, 64, 255]);
          sos.data[at + 2] = rng.pick([0x00, 0x11, 0xff]);
          return `Ss/Se/AhAl -> ${sos.data[at]}/${sos.data[at + 1]}/0x${sos.data[at + 2].toString(16)}`;
        },
        () => (segs.splice(sosAt + 1, 0, { marker: 0xda, data: sos.data.slice(), ecs: sos.ecs!.slice() }), 'scan repeated'),
        () => (segs.splice(sosAt, 1), 'scan removed'),
      ])();
      return done(`SOS ${v}`);
    }
    case 'dri': {
      const n = rng.pick([0, 1, 2, 65535]);
      segs.splice(sosAt, 0, { marker: 0xdd, data: new Uint8Array([n >> 8, n & 0xff]) });
      if (rng.chance(0.5) && sos.ecs) sos.ecs = new Uint8Array([...sos.ecs.subarray(0, sos.ecs.length >> 1), 0xff, 0xd0, ...sos.ecs.subarray(sos.ecs.length >> 1)]);
      return done(`DRI interval ${n} inserted`);
    }
    case 'length': {
      const cands = segs.filter((s) => !STANDALONE(s.marker));
      const s = rng.pick(cands);
      const v = rng.pick([0, 1, 2, s.data.length + 1, s.data.length + 3, 65535, s.data.length]);
      s.length = v;
      return done(`segment 0x${s.marker.toString(16)} length ${s.data.length + 2} -> ${v}`);
    }
    case 'truncate': {
      const full = buildJpeg(segs);
      const sosPos = buildJpeg(segs.slice(0, sosAt)).length;
      const at = rng.pick([rng.int(full.length), sosPos, sosPos + 4, sosPos + 14 + rng.int(Math.max(1, full.length - sosPos - 14)), full.length - 2, 2, 4]);
      return { bytes: full.subarray(0, at), what: `truncated to ${at} of ${full.length} bytes` };
    }
    case 'ecs': {
      const e = sos.ecs!;
      const v = rng.pick<() => string>([
        () => {
          for (let k = 0; k < 8; k++) e[rng.int(e.length)] ^= 1 << rng.int(8);
          return 'bits flipped';
        },
        () => ((sos.ecs = rng.bytes(e.length)), 'random bytes'),
        () => ((sos.ecs = new Uint8Array(e.length).fill(0xff)), 'all 0xFF'),
        () => ((sos.ecs = new Uint8Array(0)), 'empty'),
        () => ((sos.ecs = Buffer.concat([e, e, e, e])), 'four times as long'),
        () => ((sos.ecs = new Uint8Array(e.length).fill(0)), 'all zero'),
      ])();
      return done(`entropy-coded data: ${v}`);
    }
    case 'segments': {
      const v = rng.pick<() => string>([
        () => (segs.splice(sofAt, 1), 'SOF removed'),
        () => (segs.splice(sofAt, 0, { marker: sof.marker, data: sof.data.slice() }), 'SOF twice'),
        () => (segs.pop(), 'EOI removed'),
        () => (segs.splice(1, 0, { marker: 0xd9, data: new Uint8Array(0) }), 'EOI right after SOI'),
        () => (segs.splice(sosAt, 0, { marker: rng.pick([0xf0, 0xc8, 0x02, 0xde]), data: rng.bytes(4) }), 'a reserved marker before SOS'),
        () => (segs.push(...segs.slice(1).map((s) => ({ ...s, data: s.data.slice() }))), 'everything after SOI repeated'),
      ])();
      return done(v);
    }
    case 'app': {
      const v = rng.pick<() => string>([
        () => (segs.splice(1, 0, { marker: 0xe1, data: rng.bytes(65533) }), 'a 64 KiB APP1 of random bytes'),
        () => (segs.splice(1, 0, { marker: 0xe1, data: Buffer.concat([Buffer.from('Exif\u0000\u0000MM\u0000*'), rng.bytes(64)]) }), 'a broken EXIF APP1'),
        () => {
          const t = rng.pick([0, 1, 2, 255]);
          segs.splice(1, 0, { marker: 0xee, data: Buffer.concat([Buffer.from('Adobe'), new Uint8Array([0, 100, 0, 0, 0, 0, t])]) });
          return `an Adobe APP14 with transform ${t}`;
        },
        () => (segs.splice(1, 0, { marker: 0xe0, data: Buffer.from('JFIF\u0000\u0001\u0002\u0000\u0000\u0001\u0000\u0001\u00ff\u00ff') }), 'a JFIF APP0 with a 255x255 thumbnail and no data'),
        () => (segs.splice(1, 0, { marker: 0xfe, data: new Uint8Array(0) }), 'an empty COM'),
      ])();
      return done(v);
    }
    default: {
      const b = buildJpeg(segs);
      const n = rng.pick([1, 2, 4, 16]);
      for (let k = 0; k < n; k++) b[2 + rng.int(b.length - 2)] ^= 1 << rng.int(8);
      return { bytes: b, what: `${n} random bit flips` };
    }
  }
}
