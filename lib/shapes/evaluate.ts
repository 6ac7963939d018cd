/**
 * Evaluation of a shapes-world model in the engine (docs/shapes-world.md): ShapesEval on images the
 * model generates for the fixed prompt set, and VQA exact-match accuracy on freshly rendered images,
 * each in the world's template wording and in its held-out wording (the language's held-out frames,
 * never seen in training); ShapesEval also on bare "a {colour} {shape}" prompts.
 */
import { ensure } from '../errors.js';
import type { LatteFlow } from '../latte-flow.js';
import { shapesEval, type EvalPrompt, type ShapesEvalResult } from './detect.js';
import { barePrompt, blankQa, captionVariant, CONVERSE, qaVariants, type QuestionFamily } from './language.js';
import { example, examples, shapesEvalPrompts, EVAL_SEED, IMAGE_SIZE, type Example, type ShapesEvalPrompt } from './world.js';

/** template: the world's own sentences; heldout: the language's held-out frames; bare (ShapesEval
 * only): "a {colour} {shape}" for the single-object prompts, scored without a position. */
export const WORDINGS = ['template', 'heldout', 'bare'] as const;
export type Wording = (typeof WORDINGS)[number];

export interface ShapesEvalOptions {
  steps?: number;
  /** One weight, or one per expert group (GenerateOptions.guidance). */
  guidance?: number | readonly number[];
  /** Prompts to use from the fixed set (default: all 200, single-object then two-object). */
  limit?: number;
  /** Draw the prompt set from this stream instead of the fixed one (EVAL_SEED): a development set, so
   * that defaults tuned on it are not tuned on the reported figures. */
  promptSeed?: number;
  /** Time shift of the schedule (default: the model's). */
  shift?: number;
  /** ODE sampler (default: the model's). */
  sampler?: 'euler' | 'heun';
  /** The prompts' wording (default template). */
  wording?: Wording;
  onProgress?: (done: number, total: number) => void;
}

export interface ShapesEvalReport extends ShapesEvalResult {
  wording: Wording;
  /** the prompts as given to the model */
  captions: string[];
  prompts: number;
  seconds: number;
  /** Seconds of generation per image. */
  secondsPerImage: number;
}

/** A prompt of the set in a wording: the caption said to the model and what scoring checks. */
export function wordPrompt(p: ShapesEvalPrompt, wording: Wording, promptSeed = EVAL_SEED): EvalPrompt {
  if (wording === 'template') return p;
  if (wording === 'bare') return { kind: 'one', caption: barePrompt(p.objects[0]), objects: [{ shape: p.objects[0].shape, colour: p.objects[0].colour }] };
  return { ...p, caption: captionVariant(example(promptSeed, p.index), promptSeed, p.index, 'heldout') };
}

/** Prompt i of the (possibly limited) set is drawn with seed i. */
export async function evaluateShapes(lf: LatteFlow, o: ShapesEvalOptions = {}): Promise<ShapesEvalReport> {
  ensure(o.promptSeed === undefined || (Number.isInteger(o.promptSeed) && o.promptSeed >= 0), 'promptSeed must be a non-negative integer');
  const wording = o.wording ?? 'template';
  ensure((WORDINGS as readonly string[]).includes(wording), `wording must be one of ${WORDINGS.join(', ')}`);
  // bare prompts: the single-object half only (a two-object scene needs its relation said)
  const all = shapesEvalPrompts(o.promptSeed).filter((p) => wording !== 'bare' || p.kind === 'one');
  const limit = o.limit ?? all.length;
  ensure(Number.isInteger(limit) && limit >= 1, `limit must be a positive integer`);
  // an even spread over both kinds when limited
  const kept = limit >= all.length || wording === 'bare' ? all.slice(0, limit) : [...all.filter((p) => p.kind === 'one').slice(0, Math.ceil(limit / 2)), ...all.filter((p) => p.kind === 'two').slice(0, Math.floor(limit / 2))];
  const prompts = kept.map((p) => wordPrompt(p, wording, o.promptSeed));
  const side = lf.generator.config.latentSize[0] * lf.vae.config.factor;
  ensure(side === IMAGE_SIZE, `the model draws ${side}x${side} images; ShapesEval needs ${IMAGE_SIZE}x${IMAGE_SIZE}`, 'E_BAD_CONFIG');
  const images: Uint8Array[] = [];
  const t0 = performance.now();
  for (let i = 0; i < prompts.length; i++) {
    const [img] = await lf.generateImage({ prompt: prompts[i].caption, steps: o.steps, guidance: o.guidance, shift: o.shift, sampler: o.sampler, seed: i });
    images.push(img.data);
    o.onProgress?.(i + 1, prompts.length);
  }
  const seconds = (performance.now() - t0) / 1e3;
  return { ...shapesEval(prompts, images), wording, captions: prompts.map((p) => p.caption), prompts: prompts.length, seconds, secondsPerImage: seconds / prompts.length };
}

export interface VqaOptions {
  /** Fresh examples rendered from this stream (default 777777, never used in training). */
  seed?: number;
  count?: number;
  /** The questions' wording (default template; 'bare' is not a question wording). */
  wording?: Exclude<Wording, 'bare'>;
  /** Blank (all-white) images asked about after the examples, 6 questions each (default 4). */
  blanks?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface VqaReport {
  wording: Exclude<Wording, 'bare'>;
  accuracy: number;
  /** right answers that were a two-shape scene's converse caption (rightAnswers): accuracy without them
   * is (accuracy * questions - converse) / questions, the strict score of earlier reports */
  converse: number;
  questions: number;
  secondsPerAnswer: number;
  /** a few wrong answers, for the eye */
  misses: { question: string; answer: string; expected: string }[];
  /** right / asked per family of question (lib/shapes/language.ts); the template wording has no
   * relation questions */
  byKind: Partial<Record<QuestionKind, { right: number; questions: number }>>;
  /** the blank images' questions (counted in byKind, not in accuracy) */
  blank: { right: number; questions: number };
}

export type QuestionKind = QuestionFamily;

/** Which of the world's question templates a question comes from (docs/shapes-world.md). */
export function questionKind(q: string): QuestionKind {
  if (q.startsWith('what colour')) return 'colour';
  if (q.startsWith('what shape')) return 'shape';
  if (q.startsWith('how many')) return 'count';
  if (q.startsWith('where')) return 'where';
  if (q.startsWith('is there')) return 'exists';
  return 'describe';
}

/** The answers right for a question about ex: the expected one and, for a two-shape scene's description,
 * its converse caption too. "a red circle to the left of a blue square" and "a blue square to the right of
 * a red circle" are the same picture: the world draws either order at random (docs/shapes-world.md), so
 * nothing in the image tells which of the two was drawn. */
export function rightAnswers(ex: Pick<Example, 'kind' | 'objects' | 'relation' | 'caption'>, expected: string, kind: QuestionKind): string[] {
  if (kind !== 'describe' || ex.kind !== 'two' || expected !== ex.caption) return [expected];
  const [a, b] = ex.objects;
  return [expected, `a ${b.colour} ${b.shape} ${CONVERSE[ex.relation!]} a ${a.colour} ${a.shape}`];
}

/** The white image the blank questions are about. */
const BLANK = new Uint8Array(IMAGE_SIZE * IMAGE_SIZE * 3).fill(255);

/** One question per rendered example (cycling through its questions), then each blank image's questions;
 * greedy; exact match after trimming and lowercasing the answer only. */
export async function evaluateVqa(lf: LatteFlow, o: VqaOptions = {}): Promise<VqaReport> {
  const count = o.count ?? 200;
  const seed = o.seed ?? 777777;
  const wording = o.wording ?? 'template';
  ensure(wording === 'template' || wording === 'heldout', 'VQA wording must be template or heldout');
  const blanks = o.blanks ?? 4;
  ensure(Number.isInteger(blanks) && blanks >= 0, 'blanks must be a non-negative integer');
  const exs = examples(seed, 0, count);
  const asks: { image: Uint8Array; question: string; expected: string; right: string[]; kind: QuestionKind; blank: boolean }[] = exs.map((ex, i) => {
    const qa: [string, string, QuestionKind][] = wording === 'template' ? ex.qa.map(([q, a]) => [q, a, questionKind(q)]) : qaVariants(ex, seed, i, 'heldout');
    const [question, expected, kind] = qa[i % qa.length];
    return { image: ex.image, question, expected, right: rightAnswers(ex, expected, kind), kind, blank: false };
  });
  for (let b = 0; b < blanks; b++) {
    for (const [question, expected, kind] of blankQa(seed, b, wording === 'template' ? 'train' : 'heldout')) asks.push({ image: BLANK, question, expected, right: [expected], kind, blank: true });
  }
  let right = 0;
  let converse = 0;
  const misses: VqaReport['misses'] = [];
  const byKind = {} as VqaReport['byKind'];
  const blank = { right: 0, questions: 0 };
  const t0 = performance.now();
  for (let i = 0; i < asks.length; i++) {
    const { image, question, expected, right: rights, kind, blank: isBlank } = asks[i];
    const answer = await lf.answer({ image: { width: IMAGE_SIZE, height: IMAGE_SIZE, data: image }, question, maxTokens: 24 });
    const k = (byKind[kind] ??= { right: 0, questions: 0 });
    k.questions++;
    if (isBlank) blank.questions++;
    const said = answer.trim().toLowerCase();
    if (rights.includes(said)) {
      if (said !== expected) converse++;
      k.right++;
      if (isBlank) blank.right++;
      else right++;
    } else if (misses.length < 8) misses.push({ question, answer, expected });
    o.onProgress?.(i + 1, asks.length);
  }
  return { wording, accuracy: right / count, converse, questions: count, secondsPerAnswer: (performance.now() - t0) / 1e3 / asks.length, misses, byKind, blank };
}
