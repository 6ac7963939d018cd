// Decoding as transformers 5 decodes (fixtures/hf-text/decode.json, written by make.py there): no
// clean-up of tokenization spaces unless tokenizer_config.json asks for it (and, for BPE, insists);
// and the streaming detokenizer, whose pieces must always join to the full decode.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TextTokenizer } from '../lib/tokenizer.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SHIPPED = `${REPO}models/shapes/vlm/tokenizer.json`;

interface DecodeSet {
  tokenizer?: string;
  tokenizerJson?: object;
  class: string;
  config: Record<string, unknown> | null;
  cases: { ids: number[]; skip: string; keep: string }[];
}
const fixture = JSON.parse(fs.readFileSync(`${REPO}test/fixtures/hf-text/decode.json`, 'utf8')) as { transformers: string; sets: DecodeSet[] };
const shippedJson = JSON.parse(fs.readFileSync(SHIPPED, 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens: unknown[] };

// tokenizer.json (+ tokenizer_config.json) in a temp dir, loaded as a model directory's are
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-tokenizer-hf-'));
test.after.always(() => fs.rmSync(TMP, { recursive: true, force: true }));
let dirs = 0;
function load(json: object, config: object | null = null): TextTokenizer {
  const dir = path.join(TMP, String(dirs++));
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  if (config) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return TextTokenizer.fromFile(path.join(dir, 'tokenizer.json'));
}
const tokenizerOf = (set: DecodeSet) => load(set.tokenizerJson ?? JSON.parse(fs.readFileSync(`${REPO}${set.tokenizer}`, 'utf8')), set.config);

const BPE_CLEAN = { clean_up_tokenization_spaces: true, clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output: true };
const shipped = load(shippedJson);
const shippedClean = load(shippedJson, BPE_CLEAN);

test('decode equals transformers for every tokenizer_config clean-up setting, special tokens skipped or kept', (t) => {
  t.true(fixture.sets.length >= 6);
  for (const set of fixture.sets) {
    const tok = tokenizerOf(set);
    for (const c of set.cases) {
      const what = `${set.class} ${JSON.stringify(set.config)} ${JSON.stringify(c.ids)}`;
      t.is(tok.decode(c.ids, true), c.skip, what);
      t.is(tok.decode(c.ids, false), c.keep, what);
    }
  }
});

test('a tokenizer_config that does not mention clean-up keeps "Wh ?v" as it is', (t) => {
  const ids = shipped.encode('Wh ?v , it \'s');
  t.is(shipped.decode(ids), "Wh ?v , it 's");
  t.false(shipped.cleanUp);
  t.false(load(shippedJson, { clean_up_tokenization_spaces: true }).cleanUp, 'transformers 5 refuses clean-up for BPE');
  t.true(shippedClean.cleanUp);
  t.is(shippedClean.decode(ids), "Wh?v, it's");
});

/** A small seeded generator (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Streams ids and checks that the pieces join to the full decode after every flush point. */
function streamsExactly(t: import('ava').ExecutionContext, tok: TextTokenizer, ids: number[], what: string): void {
  const s = tok.streamer();
  let text = '';
  for (const id of ids) text += s.push(id);
  text += s.flush();
  t.is(text, tok.decode(ids), what);
}

test('streamed pieces join to the full decode: random ids, clean-up off and on, characters split over tokens', (t) => {
  const vocab = shippedJson.model.vocab;
  const all = Object.keys(vocab).length + shippedJson.added_tokens.length;
  // tokens that are one byte >= 0x80 (byte-level maps them to non-ASCII characters): split characters
  const bytes = Object.entries(vocab)
    .filter(([tokStr]) => [...tokStr].length === 1 && tokStr.charCodeAt(0) > 0xa0)
    .map(([, id]) => id);
  t.true(bytes.length > 60);
  // and pieces that clean-up rewrites: spaces, quotes, punctuation
  const tricky = shipped.encode(" ' . ? ! , n't 'm 's 've 're x  '  ' a").concat(shipped.encode('don'));
  const random = rng(13);
  const pick = (xs: number[]) => xs[Math.floor(random() * xs.length)];
  let n = 0;
  for (const tok of [shipped, shippedClean])
    for (let k = 0; k < 400; k++) {
      const len = 1 + Math.floor(random() * 48);
      const pool = k % 3 === 0 ? Array.from({ length: all }, (_, i) => i) : k % 3 === 1 ? bytes.concat(tricky) : tricky;
      const ids = Array.from({ length: len }, () => pick(pool));
      streamsExactly(t, tok, ids, `${tok.cleanUp ? 'clean-up' : 'plain'} ${JSON.stringify(ids)}`);
      n++;
    }
  t.is(n, 800);
});

test('streaming with clean-up: a space is neither lost nor duplicated when later text rewrites it', (t) => {
  for (const text of ["x ' .", "x ' ", 'Wh ?v', "it 's a , b . c ! d ?", "a ' b ' c ' ' ' d", "don 't go ; I 'm", 'ünï ✓ 🙂 , ok']) {
    const ids = shippedClean.encode(text);
    streamsExactly(t, shippedClean, ids, text);
    // every single id decodes on its own too (the streamer must not depend on token boundaries)
    const s = shippedClean.streamer();
    const pieces = ids.map((id) => s.push(id));
    pieces.push(s.flush());
    t.is(pieces.join(''), shippedClean.decode(ids), text);
    t.false(pieces.some((p) => p.includes('\uFFFD')), `${text}: no partial character was emitted`);
  }
});

test('streaming through a decoder that is not byte-level (WordLevel, clean-up on)', (t) => {
  const set = fixture.sets.find((s) => s.tokenizerJson && s.config?.clean_up_tokenization_spaces === true);
  t.truthy(set);
  const tok = tokenizerOf(set!);
  t.false(tok.byteLevel);
  t.true(tok.cleanUp);
  const random = rng(5);
  for (let k = 0; k < 200; k++) {
    const ids = Array.from({ length: 1 + Math.floor(random() * 20) }, () => Math.floor(random() * 14));
    streamsExactly(t, tok, ids, JSON.stringify(ids));
  }
});

// encode.json (make_encode.py): Hugging Face tokenizers' ids for the shipped tokenizer, whose last merges the
// trainer's vocab stage appended (" things" one token); the engine must split the same way.
test('encode equals Hugging Face tokenizers on the shipped tokenizer, its appended merges included', (t) => {
  const enc = JSON.parse(fs.readFileSync(`${REPO}test/fixtures/hf-text/encode.json`, 'utf8')) as { tokenizer: string; cases: { text: string; ids: number[] }[] };
  t.is(enc.tokenizer, 'models/shapes/vlm/tokenizer.json');
  for (const { text, ids } of enc.cases) t.deepEqual(shipped.encode(text), ids, text);
  t.true(enc.cases.some(({ ids }) => ids.includes(shipped.id('\u0120things'))), 'the fixture covers the grown word');
});
