/**
 * Text <-> token ids from a Hugging Face tokenizer.json (through @huggingface/tokenizers), and an
 * incremental detokenizer for streaming answers.
 */
import fs from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { LatteError } from './errors.js';

export class TextTokenizer {
  readonly #tok: HfTokenizer;

  private constructor(tok: HfTokenizer) {
    this.#tok = tok;
  }

  /** Loads tokenizer.json (and tokenizer_config.json beside it when present). */
  static fromFile(file: string): TextTokenizer {
    let json: unknown;
    let config: unknown = {};
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
      const cfg = file.replace(/tokenizer\.json$/, 'tokenizer_config.json');
      if (cfg !== file && fs.existsSync(cfg)) config = JSON.parse(fs.readFileSync(cfg, 'utf8'));
    } catch (e) {
      throw new LatteError('E_BAD_WEIGHTS', `${file}: cannot read the tokenizer (${(e as Error).message})`, { cause: e });
    }
    try {
      return new TextTokenizer(new HfTokenizer(json as object, config as object));
    } catch (e) {
      throw new LatteError('E_BAD_WEIGHTS', `${file}: not a usable tokenizer.json (${(e as Error).message})`, { cause: e });
    }
  }

  /** Ids of `text`; special-token strings in it (e.g. <|im_start|>) map to their ids. */
  encode(text: string): number[] {
    return this.#tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[], skipSpecial = true): string {
    if (ids.length === 0) return '';
    return this.#tok.decode(ids, { skip_special_tokens: skipSpecial });
  }

  /** The id of a (special) token, or an E_BAD_WEIGHTS error naming it. */
  id(token: string): number {
    const id = this.#tok.token_to_id(token);
    if (id === undefined) throw new LatteError('E_BAD_WEIGHTS', `the tokenizer has no token ${token}`);
    return id;
  }

  /** A streaming decoder: push ids one at a time, get the text they complete. */
  streamer(): TextStreamer {
    return new TextStreamer(this);
  }
}

/**
 * Emits text as tokens arrive. Byte-level BPE can split one character over several tokens, so the
 * text decoded so far may end in an incomplete character (U+FFFD): that tail is held back until a
 * later token completes it.
 */
export class TextStreamer {
  readonly #tok: TextTokenizer;
  readonly #ids: number[] = [];
  #emitted = 0;

  constructor(tok: TextTokenizer) {
    this.#tok = tok;
  }

  push(id: number): string {
    this.#ids.push(id);
    const text = this.#tok.decode(this.#ids);
    if (text.endsWith('\uFFFD')) return '';
    const fresh = text.slice(this.#emitted);
    this.#emitted = text.length;
    return fresh;
  }

  /** Whatever is left (an incomplete character at the very end included). */
  flush(): string {
    const text = this.#tok.decode(this.#ids);
    const fresh = text.slice(this.#emitted);
    this.#emitted = text.length;
    return fresh;
  }
}
