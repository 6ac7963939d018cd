/**
 * ShapesEval (GenEval-style) for the shapes world: the object detector and the scorer, exactly as
 * docs/shapes-world.md ("ShapesEval") defines them.
 *
 * Decisions where the doc leaves room (kept here so the evaluation is reproducible):
 * - Coordinates are continuous, as in the doc's drawing: pixel x spans [x, x + 1), so its centre is
 *   x + 0.5 and a cleanly drawn shape centred at (cx, cy) has its centroid at about (cx, cy).
 *   Bounding boxes are inclusive pixel indices.
 * - Colour: the nearest of the six shape colours (squared RGB distance; ties go to the earlier
 *   colour in the vocabulary order) accepted when the distance is <= 60. Including white in the
 *   palette changes nothing: no colour within 60 of a shape colour is nearer white.
 * - "Top half" of the bounding box (height h, rows 0..h-1): rows whose centre lies above h / 2
 *   count fully; for odd h the middle row (centre exactly on h / 2) counts half.
 * - Square: the four 3x3 corner cells hold >= 70% of their 36 pixels (together, >= 25.2, so 26).
 *   A bounding box smaller than 3x3 cannot happen (>= 12 pixels are needed and a 1- or 2-pixel
 *   wide component is still classified with clamped, overlapping corner cells).
 * - single object: exactly one object and it has the caption's shape. colour: exactly one object
 *   and it has the caption's colour (its shape is not asked). position: exactly one object and its
 *   centroid in the place's region (regions use strict < / > and the inclusive [22, 42]); a prompt
 *   without a place (a bare "a red square") has no position score.
 * - relation: exactly two objects, one with A's colour and shape and the other with B's, and
 *   "A to the left of B" means xB - xA >= 8 (right: xA - xB >= 8, above: yB - yA >= 8 with y
 *   downwards, below: yA - yB >= 8); the other axis is not looked at.
 * - A category with no prompts scores NaN and the overall is the mean over the categories that have
 *   prompts (for the fixed set all five do).
 */
import { ensure } from '../errors.js';

export type ShapeName = 'circle' | 'square' | 'triangle';
export type ColourName = 'red' | 'green' | 'blue' | 'yellow' | 'purple' | 'orange';
export type SizeName = 'small' | 'large';
export type PlaceName = 'left' | 'right' | 'top' | 'bottom' | 'center';
export type RelationName = 'to the left of' | 'to the right of' | 'above' | 'below';

/** The shape colours, in the vocabulary's order. */
export const SHAPE_COLOURS: Readonly<Record<ColourName, readonly [number, number, number]>> = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [235, 200, 30],
  purple: [140, 60, 180],
  orange: [245, 130, 30],
};

/** A ShapesEval prompt. For kind 'two', objects[0] is A and objects[1] is B of "A {relation} B". */
export interface EvalPrompt {
  caption: string;
  kind: 'one' | 'two';
  objects: { shape: ShapeName; colour: ColourName; size?: SizeName; place?: PlaceName }[];
  relation?: RelationName;
}

export interface DetectedObject {
  colour: ColourName;
  shape: ShapeName;
  /** Centroid in continuous pixel coordinates (pixel centres at x + 0.5, y + 0.5). */
  cx: number;
  cy: number;
  /** Inclusive pixel bounds. */
  bbox: { x0: number; y0: number; x1: number; y1: number };
  /** Number of pixels in the component. */
  pixels: number;
}

/** Per-prompt results: `single`, `colour`, `position` only for 'one', `relation` only for 'two'. */
export interface PromptScore {
  kind: 'one' | 'two';
  count: boolean;
  single?: boolean;
  colour?: boolean;
  position?: boolean;
  relation?: boolean;
  objects: DetectedObject[];
}

export interface ShapesEvalResult {
  single: number;
  colour: number;
  position: number;
  count: number;
  relation: number;
  overall: number;
  perPrompt: PromptScore[];
}

export const COLOUR_MAX_DISTANCE = 60;
export const MIN_PIXELS = 12;
export const TRIANGLE_TOP_FRACTION = 0.38;
export const SQUARE_CORNER_FILL = 0.7;
export const RELATION_MIN_PX = 8;

const COLOUR_NAMES = Object.keys(SHAPE_COLOURS) as ColourName[];

/** The colour index (into the vocabulary order) of every pixel, or -1 for none. */
function classifyPixels(image: Uint8Array, n: number): Int8Array {
  const labels = new Int8Array(n).fill(-1);
  const maxD2 = COLOUR_MAX_DISTANCE * COLOUR_MAX_DISTANCE;
  const pal = COLOUR_NAMES.map((c) => SHAPE_COLOURS[c]);
  for (let p = 0; p < n; p++) {
    const r = image[3 * p], g = image[3 * p + 1], b = image[3 * p + 2];
    let best = -1, bestD = Infinity;
    for (let k = 0; k < pal.length; k++) {
      const dr = r - pal[k][0], dg = g - pal[k][1], db = b - pal[k][2];
      const d = dr * dr + dg * dg + db * db;
      if (d < bestD) [best, bestD] = [k, d];
    }
    if (bestD <= maxD2) labels[p] = best;
  }
  return labels;
}

function classifyShape(mask: Uint8Array, size: number, bbox: DetectedObject['bbox'], total: number): ShapeName {
  const { x0, y0, x1, y1 } = bbox;
  const h = y1 - y0 + 1;
  let top = 0;
  for (let y = y0; y <= y1; y++) {
    const twice = 2 * (y - y0) + 1; // the row centre, doubled, from the box top
    const w = twice < h ? 1 : twice === h ? 0.5 : 0;
    if (w === 0) break;
    let row = 0;
    for (let x = x0; x <= x1; x++) row += mask[y * size + x];
    top += w * row;
  }
  if (top < TRIANGLE_TOP_FRACTION * total) return 'triangle';
  let filled = 0;
  for (const [cx, cy] of [[x0, y0], [x1 - 2, y0], [x0, y1 - 2], [x1 - 2, y1 - 2]]) {
    for (let dy = 0; dy < 3; dy++) {
      for (let dx = 0; dx < 3; dx++) {
        const x = Math.min(Math.max(cx + dx, x0), x1), y = Math.min(Math.max(cy + dy, y0), y1);
        filled += mask[y * size + x];
      }
    }
  }
  return filled >= SQUARE_CORNER_FILL * 36 ? 'square' : 'circle';
}

/** Finds the shapes in a size x size RGB image (row-major, 3 bytes a pixel), in raster order of their first pixel. */
export function detectObjects(image: Uint8Array, size = 64): DetectedObject[] {
  ensure(Number.isInteger(size) && size > 0, `detectObjects: bad size ${size}`);
  ensure(image.length === size * size * 3, `detectObjects: expected ${size}x${size} RGB (${size * size * 3} bytes), got ${image.length}`, 'E_SHAPE');
  const n = size * size;
  const labels = classifyPixels(image, n);
  const seen = new Uint8Array(n);
  const mask = new Uint8Array(n);
  const stack = new Int32Array(n);
  const members = new Int32Array(n);
  const out: DetectedObject[] = [];
  for (let start = 0; start < n; start++) {
    if (labels[start] < 0 || seen[start]) continue;
    const lab = labels[start];
    let sp = 0, count = 0;
    stack[sp++] = start;
    seen[start] = 1;
    let sx = 0, sy = 0, x0 = size, y0 = size, x1 = -1, y1 = -1;
    while (sp > 0) {
      const p = stack[--sp];
      members[count++] = p;
      const x = p % size, y = (p - x) / size;
      sx += x; sy += y;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      const nb = [x > 0 ? p - 1 : -1, x < size - 1 ? p + 1 : -1, y > 0 ? p - size : -1, y < size - 1 ? p + size : -1];
      for (const q of nb) {
        if (q >= 0 && !seen[q] && labels[q] === lab) {
          seen[q] = 1;
          stack[sp++] = q;
        }
      }
    }
    if (count < MIN_PIXELS) continue;
    for (let i = 0; i < count; i++) mask[members[i]] = 1;
    const bbox = { x0, y0, x1, y1 };
    const shape = classifyShape(mask, size, bbox, count);
    for (let i = 0; i < count; i++) mask[members[i]] = 0;
    out.push({ colour: COLOUR_NAMES[lab], shape, cx: sx / count + 0.5, cy: sy / count + 0.5, bbox, pixels: count });
  }
  return out;
}

/** Whether a centroid lies in a place's region. */
export function inPlace(place: PlaceName, cx: number, cy: number): boolean {
  switch (place) {
    case 'left': return cx < 26;
    case 'right': return cx > 38;
    case 'top': return cy < 26;
    case 'bottom': return cy > 38;
    case 'center': return cx >= 22 && cx <= 42 && cy >= 22 && cy <= 42;
  }
}

/** Whether A (at ax, ay) is in `relation` to B (at bx, by), by at least RELATION_MIN_PX. */
export function inRelation(relation: RelationName, ax: number, ay: number, bx: number, by: number): boolean {
  switch (relation) {
    case 'to the left of': return bx - ax >= RELATION_MIN_PX;
    case 'to the right of': return ax - bx >= RELATION_MIN_PX;
    case 'above': return by - ay >= RELATION_MIN_PX;
    case 'below': return ay - by >= RELATION_MIN_PX;
  }
}

function checkPrompt(prompt: EvalPrompt): void {
  const want = prompt.kind === 'one' ? 1 : 2;
  ensure(prompt.kind === 'one' || prompt.kind === 'two', `ShapesEval: bad prompt kind ${String(prompt.kind)}`);
  ensure(prompt.objects?.length === want, `ShapesEval: a '${prompt.kind}' prompt needs ${want} object(s): ${prompt.caption}`);
  for (const o of prompt.objects) ensure(o.colour in SHAPE_COLOURS && ['circle', 'square', 'triangle'].includes(o.shape), `ShapesEval: bad object in ${prompt.caption}`);
  if (prompt.kind === 'two') ensure(prompt.relation !== undefined && ['to the left of', 'to the right of', 'above', 'below'].includes(prompt.relation), `ShapesEval: a two-object prompt needs a relation: ${prompt.caption}`);
}

/** Scores one generated image (size x size RGB) against its prompt. */
export function scorePrompt(prompt: EvalPrompt, image: Uint8Array, size = 64): PromptScore {
  checkPrompt(prompt);
  const objects = detectObjects(image, size);
  const count = objects.length === prompt.objects.length;
  if (prompt.kind === 'one') {
    const want = prompt.objects[0];
    const one = objects.length === 1 ? objects[0] : undefined;
    return {
      kind: 'one',
      count,
      single: one !== undefined && one.shape === want.shape,
      colour: one !== undefined && one.colour === want.colour,
      // a prompt that names no place ("a red square") has no position to score
      ...(want.place === undefined ? {} : { position: one !== undefined && inPlace(want.place, one.cx, one.cy) }),
      objects,
    };
  }
  const [a, b] = prompt.objects;
  let relation = false;
  if (objects.length === 2) {
    const is = (o: DetectedObject, w: EvalPrompt['objects'][number]) => o.colour === w.colour && o.shape === w.shape;
    for (const [oa, ob] of [[objects[0], objects[1]], [objects[1], objects[0]]]) {
      if (is(oa, a) && is(ob, b) && inRelation(prompt.relation!, oa.cx, oa.cy, ob.cx, ob.cy)) relation = true;
    }
  }
  return { kind: 'two', count, relation, objects };
}

const mean = (xs: boolean[]) => (xs.length === 0 ? NaN : xs.filter(Boolean).length / xs.length);

/** ShapesEval over a prompt set: images[i] (size x size RGB) was generated for prompts[i]. */
export function shapesEval(prompts: readonly EvalPrompt[], images: readonly Uint8Array[], size = 64): ShapesEvalResult {
  ensure(prompts.length === images.length, `ShapesEval: ${prompts.length} prompts but ${images.length} images`);
  const perPrompt = prompts.map((p, i) => scorePrompt(p, images[i], size));
  const ones = perPrompt.filter((s) => s.kind === 'one');
  const twos = perPrompt.filter((s) => s.kind === 'two');
  const single = mean(ones.map((s) => s.single!));
  const colour = mean(ones.map((s) => s.colour!));
  const position = mean(ones.filter((s) => s.position !== undefined).map((s) => s.position!));
  const count = mean(perPrompt.map((s) => s.count));
  const relation = mean(twos.map((s) => s.relation!));
  const cats = [single, colour, position, count, relation].filter((v) => !Number.isNaN(v));
  const overall = cats.length === 0 ? NaN : cats.reduce((s, v) => s + v, 0) / cats.length;
  return { single, colour, position, count, relation, overall, perPrompt };
}
