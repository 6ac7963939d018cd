/**
 * Evaluation of a shapes-world model in the engine (docs/shapes-world.md): ShapesEval on images the
 * model generates for the fixed prompt set, and VQA exact-match accuracy on freshly rendered images.
 */
import { ensure } from '../errors.js';
import type { LatteFlow } from '../latte-flow.js';
import { shapesEval, type ShapesEvalResult } from './detect.js';
import { examples, shapesEvalPrompts, IMAGE_SIZE } from './world.js';

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
  onProgress?: (done: number, total: number) => void;
}

export interface ShapesEvalReport extends ShapesEvalResult {
  prompts: number;
  seconds: number;
  /** Seconds of generation per image. */
  secondsPerImage: number;
}

/** Prompt i of the (possibly limited) set is drawn with seed i. */
export async function evaluateShapes(lf: LatteFlow, o: ShapesEvalOptions = {}): Promise<ShapesEvalReport> {
  ensure(o.promptSeed === undefined || (Number.isInteger(o.promptSeed) && o.promptSeed >= 0), 'promptSeed must be a non-negative integer');
  const all = shapesEvalPrompts(o.promptSeed);
  const limit = o.limit ?? all.length;
  ensure(Number.isInteger(limit) && limit >= 1 && limit <= all.length, `limit must be in [1, ${all.length}]`);
  // an even spread over both kinds when limited
  const prompts = limit === all.length ? all : [...all.filter((p) => p.kind === 'one').slice(0, Math.ceil(limit / 2)), ...all.filter((p) => p.kind === 'two').slice(0, Math.floor(limit / 2))];
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
  return { ...shapesEval(prompts, images), prompts: prompts.length, seconds, secondsPerImage: seconds / prompts.length };
}

export interface VqaOptions {
  /** Fresh examples rendered from this stream (default 777777, never used in training). */
  seed?: number;
  count?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface VqaReport {
  accuracy: number;
  questions: number;
  secondsPerAnswer: number;
  /** a few wrong answers, for the eye */
  misses: { question: string; answer: string; expected: string }[];
  /** right / asked per kind of question (the world's question templates) */
  byKind: Record<QuestionKind, { right: number; questions: number }>;
}

export const QUESTION_KINDS = ['colour', 'shape', 'count', 'where', 'exists', 'describe'] as const;
export type QuestionKind = (typeof QUESTION_KINDS)[number];

/** Which of the world's question templates a question comes from (docs/shapes-world.md). */
export function questionKind(q: string): QuestionKind {
  if (q.startsWith('what colour')) return 'colour';
  if (q.startsWith('what shape')) return 'shape';
  if (q.startsWith('how many')) return 'count';
  if (q.startsWith('where')) return 'where';
  if (q.startsWith('is there')) return 'exists';
  return 'describe';
}

const normalise = (s: string) => s.trim().toLowerCase().replace(/[.!]+$/, '');

/** One question per rendered example (cycling through its questions), greedy, exact match. */
export async function evaluateVqa(lf: LatteFlow, o: VqaOptions = {}): Promise<VqaReport> {
  const count = o.count ?? 200;
  const exs = examples(o.seed ?? 777777, 0, count);
  let right = 0;
  const misses: VqaReport['misses'] = [];
  const byKind = Object.fromEntries(QUESTION_KINDS.map((k) => [k, { right: 0, questions: 0 }])) as VqaReport['byKind'];
  const t0 = performance.now();
  for (let i = 0; i < exs.length; i++) {
    const ex = exs[i];
    const [question, expected] = ex.qa[i % ex.qa.length];
    const answer = await lf.answer({ image: { width: IMAGE_SIZE, height: IMAGE_SIZE, data: ex.image }, question, maxTokens: 24 });
    const kind = byKind[questionKind(question)];
    kind.questions++;
    if (normalise(answer) === normalise(expected)) {
      right++;
      kind.right++;
    } else if (misses.length < 8) misses.push({ question, answer, expected });
    o.onProgress?.(i + 1, exs.length);
  }
  return { accuracy: right / exs.length, questions: exs.length, secondsPerAnswer: (performance.now() - t0) / 1e3 / exs.length, misses, byKind };
}
