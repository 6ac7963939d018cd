/**
 * A checkpoint's own chat template (Jinja, rendered with @huggingface/jinja as transformers renders
 * it with jinja2: trim_blocks and lstrip_blocks on, the tokenizer's named special tokens defined).
 *
 * Looked up in a model directory the way transformers' processor and then its tokenizer find it:
 * processor_config.json "chat_template", chat_template.json "chat_template", chat_template.jinja,
 * then tokenizer_config.json "chat_template" (a string, or a list of {name, template} of which the
 * one named "default" is used). Without any, callers fall back to chat.ts's fixed Qwen2-VL renderer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import type { ChatMessage } from './chat.js';
import { readJsonObject } from './config-file.js';
import { ensure, LatteError } from './errors.js';

/** transformers passes these (from tokenizer_config.json) to every template. */
const SPECIAL_TOKEN_NAMES = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

class TemplateRefusal extends Error {}

/**
 * The most elements range() may produce over one render. A template is code from the model's files:
 * nested range(100000) loops would otherwise run for hours; real templates loop over the messages.
 */
export const MAX_TEMPLATE_RANGE = 100_000;

/** Python's range() for one render, refusing past MAX_TEMPLATE_RANGE elements in all. */
function boundedRange(): (start: number, stop?: number, step?: number) => number[] {
  let used = 0;
  return (start, stop, step = 1) => {
    if (stop === undefined) [start, stop] = [0, start];
    if (![start, stop, step].every(Number.isInteger) || step === 0) throw new Error('range() takes integers and a non-zero step');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    used += n;
    if (used > MAX_TEMPLATE_RANGE) throw new Error(`range() past ${MAX_TEMPLATE_RANGE} elements in one render`);
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** strftime over the local time, for the directives chat templates use (e.g. Llama's "%d %b %Y"). */
function strftimeNow(format: unknown): string {
  const d = new Date();
  const two = (n: number) => String(n).padStart(2, '0');
  const fields: Record<string, string> = {
    d: two(d.getDate()), m: two(d.getMonth() + 1), Y: String(d.getFullYear()), y: two(d.getFullYear() % 100),
    H: two(d.getHours()), M: two(d.getMinutes()), S: two(d.getSeconds()),
    b: MONTHS[d.getMonth()].slice(0, 3), B: MONTHS[d.getMonth()], a: DAYS[d.getDay()].slice(0, 3), A: DAYS[d.getDay()], '%': '%',
  };
  return String(format).replace(/%(.)/g, (all, c: string) => fields[c] ?? all);
}

/**
 * The globals @huggingface/jinja's Template.render defines, with range() bounded and
 * raise_exception() a refusal of the caller's conversation (E_ARG) rather than a template bug.
 */
function globals(): Record<string, unknown> {
  return {
    false: false, true: true, none: null, False: false, True: true, None: null,
    range: boundedRange(),
    strftime_now: strftimeNow,
    raise_exception: (msg: unknown) => {
      throw new TemplateRefusal(String(msg));
    },
  };
}

export class ChatTemplate {
  readonly #template: Template;
  readonly #specials: Record<string, string>;
  /** Where the template came from (a file, or file + key). */
  readonly source: string;

  constructor(text: string, source: string, tokenizerConfig: Readonly<Record<string, unknown>> = {}) {
    this.source = source;
    try {
      this.#template = new Template(text);
    } catch (e) {
      throw new LatteError('E_BAD_CONFIG', `${source}: the chat template does not parse (${(e as Error).message})`, { cause: e });
    }
    this.#specials = {};
    for (const name of SPECIAL_TOKEN_NAMES) {
      const v = tokenizerConfig[name];
      const s = typeof v === 'string' ? v : v && typeof v === 'object' ? (v as { content?: unknown }).content : undefined;
      if (typeof s === 'string') this.#specials[name] = s;
    }
  }

  /** The prompt text for `messages` (already validated; image parts render as {type: 'image'}). */
  render(messages: ChatMessage[], addGenerationPrompt = true): string {
    const plain = messages.map((m) => ({
      role: m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((p) => (p.type === 'image' ? { type: 'image' } : { type: 'text', text: p.text })),
    }));
    let out: unknown;
    try {
      // Template.render with our globals (its own cannot be replaced through render's arguments)
      const env = new Environment();
      const vars = { ...globals(), ...this.#specials, messages: plain, add_generation_prompt: addGenerationPrompt, tools: null, documents: null };
      for (const [k, v] of Object.entries(vars)) env.set(k, v);
      out = new Interpreter(env).run(this.#template.parsed).value;
    } catch (e) {
      if (e instanceof TemplateRefusal) throw new LatteError('E_ARG', `the chat template refused the conversation: ${e.message}`, { cause: e });
      throw new LatteError('E_BAD_CONFIG', `${this.source}: the chat template failed (${(e as Error).message})`, { cause: e });
    }
    ensure(typeof out === 'string', `${this.source}: the chat template did not render a string`, 'E_BAD_CONFIG');
    return out;
  }
}

function templateText(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    ensure(typeof named?.template === 'string', `${where}: a list of chat templates needs one named "default"`, 'E_BAD_CONFIG');
    return named.template;
  }
  throw new LatteError('E_BAD_CONFIG', `${where}: chat_template must be a string`);
}

/** The model directory's chat template (see the file comment), or undefined when it has none. */
export function loadChatTemplate(dir: string, tokenizerConfig: Readonly<Record<string, unknown>>): ChatTemplate | undefined {
  const make = (text: string, source: string) => new ChatTemplate(text, source, tokenizerConfig);
  for (const name of ['processor_config.json', 'chat_template.json']) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) continue;
    const { value } = readJsonObject(file, 'E_BAD_CONFIG');
    if (value.chat_template !== undefined && value.chat_template !== null) return make(templateText(value.chat_template, file), `${file} chat_template`);
  }
  const jinja = path.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinja)) {
    let text: string;
    try {
      text = fs.readFileSync(jinja, 'utf8');
    } catch (e) {
      throw new LatteError('E_BAD_CONFIG', `${jinja}: cannot read (${(e as Error).message})`, { cause: e });
    }
    return make(text, jinja);
  }
  const fromTokenizer = tokenizerConfig.chat_template;
  if (fromTokenizer !== undefined && fromTokenizer !== null) {
    const where = path.join(dir, 'tokenizer_config.json');
    return make(templateText(fromTokenizer, where), `${where} chat_template`);
  }
  return undefined;
}
