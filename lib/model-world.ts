/**
 * What a model knows of the world it was trained on, from its world.json (the shapes models have one,
 * written by tools/shapes/train_shapes.py): the words of its training text and the pictures it saw. The
 * engine checks inputs against it and warns, instead of letting a small model answer or draw with
 * confidence about what it never saw. A model without world.json gets no warnings.
 */
import fs from 'node:fs';
import { ensure, LatteError } from './errors.js';
import { smartResize, type PreprocessorConfig, type RgbImage } from './image.js';

export interface ModelWorld {
  /** every word of the training text, lower case */
  vocabulary: ReadonlySet<string>;
  image: { width: number; height: number; background: readonly number[]; colours: Readonly<Record<string, readonly number[]>> };
}

/** world.json files are small (the shapes world's is ~2 KB); anything much bigger is not one. */
const MAX_WORLD_BYTES = 1 << 20;
/** RGB distance within which a pixel counts as a world colour (ShapesEval's detector uses the same). */
const COLOUR_DISTANCE = 60;
/** Pixels looked at, at most, spread over the image. */
const MAX_SAMPLES = 1 << 16;
/** Share of pixels in no colour of the world above which the image is called foreign. */
const FOREIGN_SHARE = 0.2;

const isRgb = (v: unknown): v is number[] => Array.isArray(v) && v.length === 3 && v.every((c) => Number.isInteger(c) && c >= 0 && c <= 255);

/** Reads and checks a world.json; problems are E_BAD_CONFIG naming the file. */
export function readWorld(file: string): ModelWorld {
  let raw: unknown;
  try {
    const size = fs.statSync(file).size;
    ensure(size <= MAX_WORLD_BYTES, `${file}: ${size} bytes, more than a world description holds (${MAX_WORLD_BYTES})`, 'E_BAD_CONFIG');
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    if (e instanceof LatteError) throw e;
    throw new LatteError('E_BAD_CONFIG', `${file}: ${(e as Error).message}`, { cause: e });
  }
  const bad = (what: string) => new LatteError('E_BAD_CONFIG', `${file}: ${what}`);
  if (!raw || typeof raw !== 'object') throw bad('not a JSON object');
  const { vocabulary, image } = raw as { vocabulary?: unknown; image?: Record<string, unknown> };
  if (!Array.isArray(vocabulary) || vocabulary.length === 0) throw bad('"vocabulary" must be a non-empty list of words');
  for (const w of vocabulary) if (typeof w !== 'string' || wordsOf(w).length !== 1 || wordsOf(w)[0] !== w) throw bad(`"vocabulary" holds ${JSON.stringify(w)}, not a lower-case word`);
  if (!image || typeof image !== 'object') throw bad('"image" must be an object');
  const { width, height, background, colours } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || (width as number) < 1 || (height as number) < 1) throw bad('"image" needs a positive integer width and height');
  if (!isRgb(background)) throw bad('"image.background" must be [r, g, b]');
  if (!colours || typeof colours !== 'object' || Object.values(colours).length === 0 || !Object.values(colours).every(isRgb)) throw bad('"image.colours" must map names to [r, g, b]');
  return { vocabulary: new Set(vocabulary as string[]), image: { width: width as number, height: height as number, background, colours: colours as Record<string, number[]> } };
}

/** The words of a text as the vocabulary lists them: lower case, split at anything but letters,
 * digits, apostrophes and hyphens. */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}'-]+/u).filter((w) => w.length > 0);
}

/** A warning for each prompt that holds words the model never saw (none when it saw them all). */
export function promptWarnings(world: ModelWorld, text: string): string[] {
  const unknown = [...new Set(wordsOf(text).filter((w) => !world.vocabulary.has(w)))];
  if (unknown.length === 0) return [];
  const shown = unknown.slice(0, 8).map((w) => JSON.stringify(w.slice(0, 40)));
  return [`the model never saw the word${unknown.length > 1 ? 's' : ''} ${shown.join(', ')}${unknown.length > 8 ? ` and ${unknown.length - 8} more` : ''}: it may ignore or misread ${unknown.length > 1 ? 'them' : 'it'}`];
}

/** Warnings for an image far from the model's pictures: another size once resized, or colours it never
 * saw. A blank image of the world's background is not far: the model was trained to say so itself. */
export function imageWarnings(world: ModelWorld, img: RgbImage, cfg: PreprocessorConfig): string[] {
  ensure(img && Number.isInteger(img.width) && Number.isInteger(img.height) && img.width > 0 && img.height > 0, 'image must have a positive integer width and height', 'E_BAD_IMAGE');
  const n = img.width * img.height;
  const channels = img.data?.length === n * 4 ? 4 : 3;
  ensure(img.data?.length === n * channels, `image data must hold ${n * 3} (RGB) or ${n * 4} (RGBA) bytes`, 'E_BAD_IMAGE');
  const out: string[] = [];
  const { width: W, height: H } = world.image;
  const [rh, rw] = smartResize(img.height, img.width, cfg.patch_size * cfg.merge_size, cfg.min_pixels, cfg.max_pixels);
  if (rw !== W || rh !== H) out.push(`the image is ${img.width}x${img.height} (${rw}x${rh} once resized); the model only saw ${W}x${H} pictures: its answer is a guess`);
  const palette = [world.image.background, ...Object.values(world.image.colours)];
  const step = Math.max(1, Math.ceil(n / MAX_SAMPLES));
  let seen = 0;
  let foreign = 0;
  for (let p = 0; p < n; p += step, seen++) {
    const i = p * channels;
    const [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
    const near = palette.some(([pr, pg, pb]) => (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2 <= COLOUR_DISTANCE ** 2);
    if (!near) foreign++;
  }
  if (foreign / seen > FOREIGN_SHARE) {
    out.push(`${Math.round((100 * foreign) / seen)}% of the image is in colours the model never saw (it knows ${Object.keys(world.image.colours).join(', ')} shapes on a plain background): its answer is a guess`);
  }
  return out;
}
