// The shapes world's language: many equivalent captions and questions per scene (docs/shapes-world.md,
// "Language"). tools/reference/latte_ref/shapes_language.py is the training-side twin; both give the
// same text for the same (seed, i, split), byte for byte (test/shapes-language.test.ts checks a fixture
// the Python one made). Every sentence comes from a frame; the held-out frames (H_*) are never used in
// training and are made only of words the training frames use.
import { ensure } from '../errors.js';
import { Mulberry32, streamState, type Example, type Relation, type ShapeObject, SHAPES, COLOURS } from './world.js';

const LANG_SALT = 0x5eed1a6e;
export const SPLITS = ['train', 'heldout'] as const;
export type Split = (typeof SPLITS)[number];

export const SIZE_WORDS = { small: ['small', 'little', 'tiny'], large: ['large', 'big'] } as const;
export const PLACE_WORDS = {
  left: ['on the left', 'at the left', 'on the left side', 'on the left-hand side', 'to the left'],
  right: ['on the right', 'at the right', 'on the right side', 'on the right-hand side', 'to the right'],
  top: ['on the top', 'at the top', 'in the upper part', 'near the top', 'above the middle'],
  bottom: ['on the bottom', 'at the bottom', 'in the lower part', 'near the bottom', 'below the middle'],
  center: ['in the center', 'in the centre', 'in the middle', 'at the center', 'in the centre of the image'],
} as const;
export const RELATION_WORDS: Record<Relation, readonly string[]> = {
  'to the left of': ['to the left of', 'left of', 'on the left of'],
  'to the right of': ['to the right of', 'right of', 'on the right of'],
  above: ['above', 'over'],
  below: ['below', 'under', 'beneath'],
};
/** The relation that says the same picture with the two shapes swapped. */
export const CONVERSE: Record<Relation, Relation> = { 'to the left of': 'to the right of', 'to the right of': 'to the left of', above: 'below', below: 'above' };

/** Every sentence of the patterns, in order: "[a|b]" is a choice (the leftmost varies slowest; "[|x]"
 * makes x optional), minus the excluded ones (the held-out frames), each once. */
export function expand(patterns: readonly string[], exclude: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const p of patterns) {
    const m = /\[([^\]]*)\]/.exec(p);
    const sentences = m ? expand(m[1].split('|').map((alt) => p.slice(0, m.index) + alt + p.slice(m.index + m[0].length))) : [p];
    for (const t of sentences) if (!exclude.includes(t) && !out.includes(t)) out.push(t);
  }
  return out;
}

// The train frames are a small grammar; a held-out frame (H_*) is one of its combinations left out, or a
// word order it never uses, so the held-out split measures whether the parts were learnt, not the sentences.
export const H_ONE_FRAMES = ['{place} there is {np}', '{np} is {place}'];
export const ONE_FRAMES = expand(
  [
    '{np} {place}', '[|in the image |in this picture ]there is {np} {place}', '{place} is {np}', '[|in the image |in this picture ]you can see {np} {place}',
    '{place} you can see {np}', '{np} [sits|located|which is|that is] {place}',
  ],
  H_ONE_FRAMES,
);
const BARE_FRAMES = ['{np}', 'there is {np}', 'you can see {np}'];
export const H_TWO_FRAMES = ['{a} is {rel} {b}', '{rel} {b} there is {a}'];
export const TWO_FRAMES = expand(
  [
    '{a} {rel} {b}', '[|in the image |in this picture ]there is {a} {rel} {b}', '{rel} {b} is {a}', '{b} {conv} {a}',
    '[|in the image |in this picture ]you can see {a} {rel} {b}', '{rel} {b} you can see {a}',
    '{a} [sits|located|which is|that is] {rel} {b}', 'there is {b} {conv} {a}',
  ],
  H_TWO_FRAMES,
);

export const QUESTION_FAMILIES = ['colour', 'shape', 'count', 'exists', 'where', 'leftright', 'abovebelow', 'describe'] as const;
export type QuestionFamily = (typeof QUESTION_FAMILIES)[number];
const HELD: Record<QuestionFamily, readonly string[]> = {
  colour: ['which color is the {s}?', 'what is the color of the {s}?'],
  shape: ['what kind of shape is the {c} thing?', 'which shape is the {c} object?'],
  count: ['how many objects do you see?', 'how many things are there?'],
  exists: ['do you see {np} in the image?', 'can you see {np} in the image?'],
  where: ['in which part of the image is the {s}?', 'where in the image is the {s}?'],
  leftright: ['is the {x} on the left or on the right of the {y}?'],
  abovebelow: ['is the {x} under or over the {y}?'],
  describe: ['describe what you see.', 'what is in this picture?'],
};
const TRAIN: Record<QuestionFamily, readonly string[]> = {
  colour: [
    '[what|which] [colour|color] is the {s}[| in the image| in the picture]?', 'what is the [colour|color] of the {s}[| in the image]?',
    'what [colour|color] does the {s} have?', 'tell me the [colour|color] of the {s}.',
  ],
  shape: ['[what shape|what kind of shape|which shape|what sort of shape] is the {c} [object|thing|one]?', 'which shape is {c}?', 'what is the shape of the {c} [object|thing]?'],
  count: ['how many [shapes|objects|things] [are there|do you see|can you see|are in the image|are in the picture]?', 'count the [shapes|objects|things].'],
  exists: ['[is there|do you see|can you see|can you find] {np}[| in the image| in the picture| in this image| here]?'],
  where: [
    'where is the {s}[| located][| in the image| in the picture]?', 'in [which|what] part[| of the image| of the picture] is the {s}?',
    'where in the picture is the {s}?', 'which part of the [image|picture] is the {s} in?',
  ],
  leftright: [
    'is the {x} [left|to the left|on the left] or [right|to the right|on the right] of the {y}?',
    'is the {x} [right|to the right|on the right] or [left|to the left|on the left] of the {y}?',
  ],
  abovebelow: ['is the {x} [above|over] or [below|under|beneath] the {y}?', 'is the {x} [below|under|beneath] or [above|over] the {y}?'],
  describe: [
    'describe [the|this] [image|picture].', 'what is in [the|this] [image|picture]?', 'caption [the|this] [image|picture].',
    'what [do|can] you see[| in the image| in the picture]?', 'tell me what you see.',
  ],
};
/** [train forms, held-out forms]; {s} shape, {c} colour, {np} "a red circle", {x}/{y} "red circle" */
export const QUESTIONS = {} as Record<QuestionFamily, readonly [readonly string[], readonly string[]]>;
for (const f of QUESTION_FAMILIES) QUESTIONS[f] = [expand(TRAIN[f], HELD[f]), HELD[f]];

const fill = (frame: string, slots: Record<string, string>): string => frame.replace(/\{(\w+)\}/g, (_, k: string) => slots[k]);
const isVowel = (ch: string) => 'aeiou'.includes(ch);

/** The language's draws for one example: a mulberry32 stream of its own (the scene's is untouched). */
class Words {
  readonly rng: Mulberry32;
  constructor(seed: number, i: number) {
    this.rng = new Mulberry32((streamState(seed, i) ^ LANG_SALT) >>> 0);
  }
  pick<T>(options: readonly T[]): T {
    return options[this.rng.int(options.length)];
  }
  /** true one time in n */
  chance(n: number): boolean {
    return this.rng.int(n) === 0;
  }
  /** a (an before a vowel), one or the; the templates' bare "a" stays a training form too */
  article(nextWord: string): string {
    const art = this.pick(['a', 'a', 'one', 'the']);
    if (art === 'a' && isVowel(nextWord[0]) && !this.chance(4)) return 'an';
    return art;
  }
  np(o: ShapeObject, size: boolean): string {
    const words = [...(size ? [this.pick(SIZE_WORDS[o.size])] : []), o.colour, o.shape];
    return `${this.article(words[0])} ${words.join(' ')}`;
  }
  /** capital first letter one time in three; the final mark kept or dropped */
  surface(text: string, stop: string): string {
    const body = text.endsWith('.') || text.endsWith('?') ? text.slice(0, -1) : text;
    let mark = text.slice(body.length) || stop;
    if (mark === '.') {
      if (!this.chance(3)) mark = '';
    } else if (mark === '?' && this.chance(4)) mark = '';
    const b = this.chance(3) ? body[0].toUpperCase() + body.slice(1) : body;
    return b + mark;
  }
  ask(family: QuestionFamily, split: Split, slots: Record<string, string> = {}): string {
    return this.surface(fill(this.pick(QUESTIONS[family][split === 'heldout' ? 1 : 0]), slots), '?');
  }
}

const checkSplit = (split: string) => ensure((SPLITS as readonly string[]).includes(split), `split must be one of ${SPLITS.join(', ')}, got ${JSON.stringify(split)}`);
type Scene = Pick<Example, 'caption' | 'qa' | 'objects' | 'kind' | 'place' | 'relation'>;

/** A caption of example i of stream seed (its scene ex) in varied wording. Train captions may leave out
 * the size and (one shape) the place; held-out ones keep both and use a held-out frame. */
export function captionVariant(ex: Scene, seed: number, i: number, split: Split = 'train'): string {
  checkSplit(split);
  const w = new Words(seed, i);
  const held = split === 'heldout';
  if (ex.kind === 'one') {
    const np = w.np(ex.objects[0], held || !w.chance(2));
    if (!held && w.chance(4)) return w.surface(fill(w.pick(BARE_FRAMES), { np }), '.');
    const frame = w.pick(held ? H_ONE_FRAMES : ONE_FRAMES);
    return w.surface(fill(frame, { np, place: w.pick(PLACE_WORDS[ex.place!]) }), '.');
  }
  const [a, b] = ex.objects;
  const sized = w.chance(4);
  const frame = w.pick(held ? H_TWO_FRAMES : TWO_FRAMES);
  const rel = ex.relation!;
  const slots = { a: w.np(a, sized), b: w.np(b, sized), rel: w.pick(RELATION_WORDS[rel]), conv: w.pick(RELATION_WORDS[CONVERSE[rel]]) };
  return w.surface(fill(frame, slots), '.');
}

const ANSWER_OF: Record<Relation, string> = { 'to the left of': 'left', 'to the right of': 'right', above: 'above', below: 'below' };

/** The template questions of ex (in their order) in varied wording with the same answers, then for two
 * shapes "left or right" / "above or below" (answer: left, right, above or below). Each comes with its
 * family. */
export function qaVariants(ex: Scene, seed: number, i: number, split: Split = 'train'): [question: string, answer: string, family: QuestionFamily][] {
  checkSplit(split);
  const w = new Words(seed, i);
  const out: [string, string, QuestionFamily][] = [];
  const after = (q: string, head: string, tail: string) => q.slice(head.length, q.length - tail.length);
  for (const [q, a] of ex.qa) {
    if (q.startsWith('what colour is the ')) out.push([w.ask('colour', split, { s: after(q, 'what colour is the ', '?') }), a, 'colour']);
    else if (q.startsWith('what shape is the ')) out.push([w.ask('shape', split, { c: after(q, 'what shape is the ', ' object?') }), a, 'shape']);
    else if (q.startsWith('how many')) out.push([w.ask('count', split), a, 'count']);
    else if (q.startsWith('is there a ')) {
      const [colour, shape] = after(q, 'is there a ', '?').split(' ');
      const np = `${w.article(colour)} ${colour} ${shape}`;
      out.push([w.ask('exists', split, { np }), a, 'exists']);
    } else if (q.startsWith('where is the ')) out.push([w.ask('where', split, { s: after(q, 'where is the ', '?') }), a, 'where']);
    else out.push([w.ask('describe', split), a, 'describe']);
  }
  if (ex.kind === 'two') {
    const [a, b] = ex.objects;
    const rel0 = ex.relation!;
    const horizontal = rel0 === 'to the left of' || rel0 === 'to the right of';
    const [x, y] = !w.chance(2) ? [a, b] : [b, a];
    const rel = x === a ? rel0 : CONVERSE[rel0];
    const family = horizontal ? 'leftright' : 'abovebelow';
    out.push([w.ask(family, split, { x: `${x.colour} ${x.shape}`, y: `${y.colour} ${y.shape}` }), ANSWER_OF[rel], family]);
  }
  return out;
}

/** Questions about a blank (all-white) image: how many -> zero, describe -> no shapes, is there -> no,
 * what colour / what shape / where -> no shapes. */
export function blankQa(seed: number, i: number, split: Split = 'train'): [question: string, answer: string, family: QuestionFamily][] {
  checkSplit(split);
  const w = new Words(seed, i);
  const s = SHAPES[w.rng.int(3)];
  const c = COLOURS[w.rng.int(6)].name;
  const count = w.ask('count', split);
  const describe = w.ask('describe', split);
  const np = `${w.article(c)} ${c} ${s}`;
  return [
    [count, 'zero', 'count'],
    [describe, 'no shapes', 'describe'],
    [w.ask('exists', split, { np }), 'no', 'exists'],
    [w.ask('colour', split, { s }), 'no shapes', 'colour'],
    [w.ask('shape', split, { c }), 'no shapes', 'shape'],
    [w.ask('where', split, { s }), 'no shapes', 'where'],
  ];
}

/** "a {colour} {shape}" ("an" before a vowel). */
export function barePrompt(o: { colour: string; shape: string }): string {
  return `${isVowel(o.colour[0]) ? 'an' : 'a'} ${o.colour} ${o.shape}`;
}
