/**
 * Text <-> token ids from a Hugging Face tokenizer.json (through @huggingface/tokenizers), and an
 * incremental detokenizer for streaming answers.
 *
 * Decoding follows transformers 5 (TokenizersBackend._decode): the text is cleaned up ("a ," -> "a,",
 * "do n't" -> "don't") only when tokenizer_config.json sets `clean_up_tokenization_spaces: true`, and
 * for a BPE model only if it also sets `clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output`.
 * @huggingface/tokenizers would clean up whenever the config is silent, so its own clean-up is always
 * switched off here and ours is applied instead.
 */
import fs from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { describe, LatteError } from './errors.js';

/** transformers' clean_up_tokenization: Python str.replace, in this order (replaceAll scans the same way). */
const CLEAN_UPS: readonly [string, string][] = [
  [' .', '.'],
  [' ?', '?'],
  [' !', '!'],
  [' ,', ','],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"],
];

export function cleanUpTokenization(text: string): string {
  for (const [from, to] of CLEAN_UPS) text = text.replaceAll(from, to);
  return text;
}

/** transformers 5's rule for whether decode cleans up (see the file comment). */
export function cleansUp(modelType: unknown, config: Record<string, unknown>): boolean {
  if (config.clean_up_tokenization_spaces !== true) return false;
  return modelType !== 'BPE' || config.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output === true;
}

/**
 * The smallest and largest ids in tokenizer.json: its model's vocabulary (an object of ids, or Unigram's list,
 * whose ids are positions) and its added tokens. Read from the JSON: the tokenizer library's
 * get_vocab() fills an array up to the largest id, which for an id of 2^31 never finishes.
 */
function idRangeOf(json: Record<string, unknown>): [number, number] {
  let least = Infinity;
  let most = -1;
  const see = (id: unknown) => {
    if (typeof id !== 'number') return;
    least = Math.min(least, id);
    most = Math.max(most, id);
  };
  const vocab = (json.model as { vocab?: unknown } | undefined)?.vocab;
  if (Array.isArray(vocab)) [least, most] = vocab.length ? [0, vocab.length - 1] : [Infinity, -1];
  else if (vocab && typeof vocab === 'object') for (const id of Object.values(vocab)) see(id);
  if (Array.isArray(json.added_tokens)) for (const t of json.added_tokens) see((t as { id?: unknown } | null)?.id);
  return [least === Infinity ? 0 : least, most];
}

/**
 * Whether a regular expression repeats a group that itself repeats without bound, e.g. `(.*)*x` or
 * `(a+)+`: the classic catastrophic-backtracking shape, seconds per request in a JavaScript RegExp.
 * Real tokenizers' split patterns (GPT-2, Qwen2, Llama 3) have none.
 */
export function hasNestedQuantifier(re: string): boolean {
  const groups: boolean[] = []; // per open group: does its body repeat without bound?
  let inClass = false;
  let closedRepeats: boolean | undefined; // the group that just closed, until the next token
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    const unbounded = !inClass && (c === '*' || c === '+' || (c === '{' && /^\{\d*,\}/.test(re.slice(i, i + 12))));
    if (unbounded) {
      if (closedRepeats) return true;
      if (groups.length) groups[groups.length - 1] = true;
    }
    const wasClosed = closedRepeats;
    closedRepeats = undefined;
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') groups.push(false);
    else if (c === ')') {
      closedRepeats = groups.pop() ?? false;
      if (closedRepeats && groups.length) groups[groups.length - 1] = true;
    } else if (c === '?' && wasClosed !== undefined) closedRepeats = wasClosed; // `)?` keeps looking
  }
  return false;
}

/** Every regex pattern a tokenizer.json holds ({"Regex": "..."} in its normalizer, pre-tokenizer, decoder). */
function regexPatterns(json: unknown): string[] {
  const found: string[] = [];
  const pending: [unknown, number][] = [[json, 0]];
  while (pending.length) {
    const [v, depth] = pending.pop()!;
    if (!v || typeof v !== 'object' || depth > 32) continue;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (k === 'Regex' && typeof x === 'string') found.push(x);
      else if (k !== 'vocab' && k !== 'merges' && k !== 'added_tokens') pending.push([x, depth + 1]);
    }
  }
  return found;
}

export class TextTokenizer {
  readonly #tok: HfTokenizer;
  /** tokenizer_config.json beside tokenizer.json ({} when there is none). */
  readonly config: Readonly<Record<string, unknown>>;
  /** Whether decode() cleans up tokenization spaces (transformers' rule). */
  readonly cleanUp: boolean;
  /** Byte-level decoding: the text of ids a + b is text(a) + text(b) when text(a) ends on a whole character. */
  readonly byteLevel: boolean;

  readonly #idRange: [number, number];

  private constructor(tok: HfTokenizer, json: Record<string, unknown>, config: Record<string, unknown>) {
    this.#tok = tok;
    this.config = config;
    const model = json.model as { type?: unknown } | undefined;
    this.cleanUp = cleansUp(model?.type, config);
    this.byteLevel = (json.decoder as { type?: unknown } | null | undefined)?.type === 'ByteLevel';
    this.#idRange = idRangeOf(json);
  }

  /** Loads tokenizer.json (and tokenizer_config.json beside it when present). */
  static fromFile(file: string): TextTokenizer {
    let json: Record<string, unknown>;
    let config: Record<string, unknown> = {};
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
      const cfg = file.replace(/tokenizer\.json$/, 'tokenizer_config.json');
      if (cfg !== file && fs.existsSync(cfg)) config = JSON.parse(fs.readFileSync(cfg, 'utf8'));
    } catch (e) {
      throw new LatteError('E_BAD_WEIGHTS', `${file}: cannot read the tokenizer (${(e as Error).message})`, { cause: e });
    }
    return TextTokenizer.fromJson(json, config, file);
  }

  /** A tokenizer from the parsed tokenizer.json and tokenizer_config.json. */
  static fromJson(json: unknown, config: unknown = {}, name = 'tokenizer.json'): TextTokenizer {
    const isObject = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);
    if (!isObject(json)) throw new LatteError('E_BAD_WEIGHTS', `${name}: not a JSON object`);
    if (!isObject(config)) throw new LatteError('E_BAD_WEIGHTS', `${name}: tokenizer_config.json is not a JSON object`);
    for (const re of regexPatterns(json))
      if (hasNestedQuantifier(re)) throw new LatteError('E_BAD_WEIGHTS', `${name}: the pattern ${describe(re)} repeats a repeating group (catastrophic backtracking: seconds per request)`);
    try {
      const tok = new TextTokenizer(new HfTokenizer(json, config), json, config);
      // a malformed normalizer or pre-tokenizer only throws when used: find it now, not per request
      tok.encode('a b');
      return tok;
    } catch (e) {
      throw new LatteError('E_BAD_WEIGHTS', `${name}: not a usable tokenizer.json (${(e as Error).message})`, { cause: e });
    }
  }

  /** Ids of `text`; special-token strings in it (e.g. <|im_start|>) map to their ids. */
  encode(text: string): number[] {
    try {
      return this.#tok.encode(text, { add_special_tokens: false }).ids;
    } catch (e) {
      throw new LatteError('E_BAD_WEIGHTS', `the tokenizer cannot encode this text (${(e as Error)?.message ?? describe(e)})`, { cause: e });
    }
  }

  /** The text of `ids`, as transformers' tokenizer.decode(ids, skip_special_tokens) gives it. */
  decode(ids: number[], skipSpecial = true): string {
    const text = this.rawDecode(ids, skipSpecial);
    return this.cleanUp ? cleanUpTokenization(text) : text;
  }

  /** @internal The text before clean-up. */
  rawDecode(ids: number[], skipSpecial = true): string {
    if (ids.length === 0) return '';
    try {
      return this.#tok.decode(ids, { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new LatteError('E_BAD_WEIGHTS', `the tokenizer cannot decode these ids (${(e as Error)?.message ?? describe(e)})`, { cause: e });
    }
  }

  /** The id of a (special) token, or an E_BAD_WEIGHTS error naming it. */
  id(token: string): number {
    const id = this.#tok.token_to_id(token);
    if (id === undefined) throw new LatteError('E_BAD_WEIGHTS', `the tokenizer has no token ${token}`);
    return id;
  }

  /** The smallest and largest ids the tokenizer can produce (added tokens included); [0, -1] for an empty vocabulary. */
  idRange(): [number, number] {
    return [...this.#idRange];
  }

  /** A streaming decoder: push ids one at a time, get the text they complete. */
  streamer(): TextStreamer {
    return new TextStreamer(this);
  }
}

// Clean-up patterns are at most 4 characters and start with a space: none straddles a point that
// follows 3 characters which are not spaces, so clean(a + b) = clean(a) + clean(b) at such a point.
const LOOK_BACK = 3;

/** The last point in `raw` that no clean-up pattern can straddle (`raw` starts at the text's start or after 3 non-spaces). */
function lastCut(raw: string): number {
  for (let c = raw.length; c > 0; c--) if (!raw.slice(Math.max(0, c - LOOK_BACK), c).includes(' ')) return c;
  return 0;
}

/**
 * Emits text as tokens arrive, such that the pieces (the flush included) always join to
 * decode(all ids), whether or not the tokenizer cleans up.
 *
 * Byte-level BPE can split one character over several tokens: ids whose text ends in an incomplete
 * character (U+FFFD) wait for the tokens that complete it. Clean-up can delete a space decoded
 * earlier ("Wh " + "?" -> "Wh?") or keep one it would have deleted ("x ' " -> "x'", but "x ' ." stays),
 * so with clean-up on, text after the last 3 consecutive non-space characters waits for what follows.
 * Only the waiting text is decoded again per token (for byte-level decoders; others re-decode all).
 */
export class TextStreamer {
  readonly #tok: TextTokenizer;
  #pending: number[] = []; // ids whose text is not yet in #raw
  #done: number[] = []; // ids whose text is in #raw or emitted (kept only for decoders that are not byte-level)
  #raw = ''; // decoded text (before clean-up) not yet emitted

  constructor(tok: TextTokenizer) {
    this.#tok = tok;
  }

  push(id: number): string {
    this.#pending.push(id);
    const text = this.#decodePending();
    if (text.endsWith('\uFFFD')) return ''; // an incomplete character: wait for the rest
    this.#take(text);
    const cut = this.#tok.cleanUp ? lastCut(this.#raw) : this.#raw.length;
    const head = this.#raw.slice(0, cut);
    this.#raw = this.#raw.slice(cut);
    return this.#tok.cleanUp ? cleanUpTokenization(head) : head;
  }

  /** Whatever is left (an incomplete character at the very end included). */
  flush(): string {
    if (this.#pending.length > 0) this.#take(this.#decodePending());
    const rest = this.#raw;
    this.#raw = '';
    return this.#tok.cleanUp ? cleanUpTokenization(rest) : rest;
  }

  #decodePending(): string {
    if (this.#tok.byteLevel) return this.#tok.rawDecode(this.#pending);
    const before = this.#tok.rawDecode(this.#done);
    const all = this.#tok.rawDecode([...this.#done, ...this.#pending]);
    if (!all.startsWith(before)) throw new LatteError('E_INTERNAL', 'the tokenizer rewrote text it had already decoded');
    return all.slice(before.length);
  }

  #take(text: string): void {
    this.#raw += text;
    if (!this.#tok.byteLevel) this.#done.push(...this.#pending);
    this.#pending = [];
  }
}
