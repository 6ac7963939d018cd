// The shapes world: seeded 64x64 scenes of one or two coloured shapes, with captions and Q&A.
// docs/shapes-world.md is the contract. tools/reference/latte_ref/shapes_world.py is the training-side
// twin; both must give the same examples byte for byte (test/shapes-world.test.ts checks a fixture made by
// the Python one), so everything here is integer arithmetic on values well inside 2^31.
import { ensure } from '../errors.js';

export const IMAGE_SIZE = 64;
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export const COLOURS = [
  { name: 'red', rgb: [220, 40, 40] },
  { name: 'green', rgb: [40, 170, 60] },
  { name: 'blue', rgb: [40, 80, 220] },
  { name: 'yellow', rgb: [235, 200, 30] },
  { name: 'purple', rgb: [140, 60, 180] },
  { name: 'orange', rgb: [245, 130, 30] },
] as const;
export const BACKGROUND = [255, 255, 255] as const;
/** px: circle diameter, square side, triangle base and height. */
export const SIZES = [
  { name: 'small', px: 14 },
  { name: 'large', px: 24 },
] as const;
/** The centre of a single shape at each place, before jitter. */
export const PLACES = [
  { name: 'left', x: 16, y: 32 },
  { name: 'right', x: 48, y: 32 },
  { name: 'top', x: 32, y: 16 },
  { name: 'bottom', x: 32, y: 48 },
  { name: 'center', x: 32, y: 32 },
] as const;
export const RELATIONS = ['to the left of', 'to the right of', 'above', 'below'] as const;
export const EVAL_SEED = 424242;
/** The development prompt set's stream: defaults are tuned on it, never on EVAL_SEED's (tools/shapes/tune.ts). */
export const DEV_SEED = 515151;
export const EVAL_PER_KIND = 100;

export type Shape = (typeof SHAPES)[number];
export type Colour = (typeof COLOURS)[number]['name'];
export type Size = (typeof SIZES)[number]['name'];
export type Place = (typeof PLACES)[number]['name'];
export type Relation = (typeof RELATIONS)[number];

export interface ShapeObject {
  shape: Shape;
  colour: Colour;
  size: Size;
  /** centre, whole pixels */
  cx: number;
  cy: number;
}

export interface Example {
  /** IMAGE_SIZE x IMAGE_SIZE, row-major RGB */
  image: Uint8Array;
  caption: string;
  qa: [question: string, answer: string][];
  objects: ShapeObject[];
  kind: 'one' | 'two';
  /** kind 'one' only */
  place: Place | null;
  /** kind 'two' only */
  relation: Relation | null;
}

export interface ShapesEvalPrompt {
  /** the example index in stream EVAL_SEED */
  index: number;
  kind: 'one' | 'two';
  caption: string;
  /** A then B for kind 'two'; a single object carries its place (the layout lib/shapes/detect.ts scores) */
  objects: { shape: Shape; colour: Colour; size: Size; place?: Place }[];
  relation?: Relation;
}

/** mulberry32: a tiny generator with the same uint32 results in JS and Python. */
export class Mulberry32 {
  private a: number;
  constructor(state: number) {
    this.a = state | 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) | 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return this.next() % n;
  }
}

/** Example i of stream `seed` starts from its own state, so any example can be rendered alone. */
export function streamState(seed: number, i: number): number {
  // imul keeps seed * 1000003 exact mod 2^32 where a plain product would lose bits past 2^53
  return (Math.imul(seed, 1000003) + i) >>> 0;
}

/** The spec's inside test; dx, dy = subsample minus centre and half = 4 * size, all in 1/8 px. */
function inside(shape: Shape, dx: number, dy: number, half: number): boolean {
  switch (shape) {
    case 'circle':
      return dx * dx + dy * dy <= half * half;
    case 'square':
      return Math.abs(dx) <= half && Math.abs(dy) <= half;
    case 'triangle':
      // apex (0, -half), base corners (+-half, half): edge functions of apex -> right -> left, divided by half
      return half - dy >= 0 && half + dy - 2 * dx >= 0 && half + dy + 2 * dx >= 0;
  }
}

const byName = <T extends { name: string }>(list: readonly T[], name: string, what: string): T => {
  const found = list.find((v) => v.name === name);
  ensure(found, `unknown ${what} ${JSON.stringify(name)}`);
  return found;
};

/** The image of `objects` drawn in order over white: each pixel counts its 4 x 4 covered subsamples c
 * and becomes (under * (16 - c) + colour * c + 8) >> 4 per channel. */
export function render(objects: readonly ShapeObject[]): Uint8Array {
  const img = new Uint8Array(IMAGE_SIZE * IMAGE_SIZE * 3);
  for (let p = 0; p < img.length; p += 3) img.set(BACKGROUND, p);
  for (const o of objects) {
    ensure((SHAPES as readonly string[]).includes(o.shape), `unknown shape ${JSON.stringify(o.shape)}`);
    ensure(Number.isInteger(o.cx) && Number.isInteger(o.cy), 'object centres must be whole pixels');
    const rgb = byName(COLOURS, o.colour, 'colour').rgb;
    const size = byName(SIZES, o.size, 'size').px;
    const half = 4 * size;
    const [cx, cy] = [8 * o.cx, 8 * o.cy];
    // only pixels within size / 2 + 1 of the centre can be covered
    const r = size / 2 + 1;
    const [x0, x1] = [Math.max(0, o.cx - r), Math.min(IMAGE_SIZE - 1, o.cx + r)];
    const [y0, y1] = [Math.max(0, o.cy - r), Math.min(IMAGE_SIZE - 1, o.cy + r)];
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        let c = 0;
        for (let ky = 0; ky < 4; ky++) {
          for (let kx = 0; kx < 4; kx++) {
            if (inside(o.shape, 8 * x + 1 + 2 * kx - cx, 8 * y + 1 + 2 * ky - cy, half)) c++;
          }
        }
        if (c === 0) continue;
        const p = (y * IMAGE_SIZE + x) * 3;
        for (let ch = 0; ch < 3; ch++) img[p + ch] = (img[p + ch] * (16 - c) + rgb[ch] * c + 8) >> 4;
      }
    }
  }
  return img;
}

type Scene = Omit<Example, 'image'>;

/** Everything of example i except the image, in the spec's draw order. */
function scene(seed: number, i: number): Scene {
  const rng = new Mulberry32(streamState(seed, i));
  let objects: ShapeObject[];
  let caption: string;
  let place: Place | null = null;
  let relation: Relation | null = null;
  if (rng.int(2) === 0) {
    const shape = SHAPES[rng.int(3)];
    const colour = COLOURS[rng.int(6)].name;
    const size = SIZES[rng.int(2)].name;
    const at = PLACES[rng.int(5)];
    const cx = at.x + rng.int(7) - 3;
    const cy = at.y + rng.int(7) - 3;
    objects = [{ shape, colour, size, cx, cy }];
    place = at.name;
    caption = `a ${size} ${colour} ${shape} ${place === 'center' ? 'in the center' : `on the ${place}`}`;
  } else {
    const [sa, ca, sb] = [rng.int(3), rng.int(6), rng.int(3)];
    let cb = rng.int(6);
    while (cb === ca) cb = rng.int(6);
    const rel = rng.int(4);
    // "left of" / "above": A takes the low coordinate (16) on the relation axis; the others swap
    const [aBase, bBase] = rel === 0 || rel === 2 ? [16, 48] : [48, 16];
    const aMain = aBase + rng.int(7) - 3; // relation axis: A, then B
    const bMain = bBase + rng.int(7) - 3;
    const aCross = 32 + rng.int(9) - 4; // other axis: A, then B
    const bCross = 32 + rng.int(9) - 4;
    const [[ax, ay], [bx, by]] = rel < 2 ? [[aMain, aCross], [bMain, bCross]] : [[aCross, aMain], [bCross, bMain]];
    objects = [
      { shape: SHAPES[sa], colour: COLOURS[ca].name, size: 'small', cx: ax, cy: ay },
      { shape: SHAPES[sb], colour: COLOURS[cb].name, size: 'small', cx: bx, cy: by },
    ];
    relation = RELATIONS[rel];
    caption = `a ${COLOURS[ca].name} ${SHAPES[sa]} ${relation} a ${COLOURS[cb].name} ${SHAPES[sb]}`;
  }

  const qa: [string, string][] = [];
  for (const o of objects) {
    if (objects.filter((p) => p.shape === o.shape).length === 1) qa.push([`what colour is the ${o.shape}?`, o.colour]);
  }
  for (const o of objects) qa.push([`what shape is the ${o.colour} object?`, o.shape]); // colours are distinct
  qa.push(['how many shapes are there?', objects.length === 1 ? 'one' : 'two']);
  for (const o of objects) qa.push([`is there a ${o.colour} ${o.shape}?`, 'yes']);
  for (;;) {
    const [s, c] = [SHAPES[rng.int(3)], COLOURS[rng.int(6)].name];
    if (objects.some((o) => o.shape === s && o.colour === c)) continue;
    qa.push([`is there a ${c} ${s}?`, 'no']);
    break;
  }
  if (place !== null) qa.push([`where is the ${objects[0].shape}?`, place]);
  qa.push(['describe the image.', caption]);
  return { caption, qa, objects, kind: objects.length === 1 ? 'one' : 'two', place, relation };
}

/** Example i of stream `seed` (seed: any safe integer, i >= 0). */
export function example(seed: number, i: number): Example {
  ensure(Number.isSafeInteger(seed), `seed must be a safe integer, got ${seed}`);
  ensure(Number.isSafeInteger(i) && i >= 0, `example index must be a non-negative safe integer, got ${i}`);
  const s = scene(seed, i);
  return { image: render(s.objects), ...s };
}

/** Examples start .. start + n - 1 of stream `seed`. */
export function examples(seed: number, start: number, n: number): Example[] {
  ensure(Number.isSafeInteger(n) && n >= 0, `example count must be a non-negative integer, got ${n}`);
  return Array.from({ length: n }, (_, k) => example(seed, start + k));
}

/** The ShapesEval prompts: the first 100 one-shape, then the first 100 two-shape examples of stream
 * EVAL_SEED, with what scoring needs (the objects' shapes, colours and sizes, and the place or relation).
 * Another seed gives another prompt set of the same make (e.g. a development set for tuning defaults). */
export function shapesEvalPrompts(seed = EVAL_SEED, perKind = EVAL_PER_KIND): ShapesEvalPrompt[] {
  const found: Record<'one' | 'two', ShapesEvalPrompt[]> = { one: [], two: [] };
  for (let i = 0; found.one.length < perKind || found.two.length < perKind; i++) {
    const s = scene(seed, i);
    if (found[s.kind].length >= perKind) continue;
    const objects: ShapesEvalPrompt['objects'] = s.objects.map(({ shape, colour, size }) => ({ shape, colour, size }));
    const p: ShapesEvalPrompt = { index: i, kind: s.kind, caption: s.caption, objects };
    if (s.place !== null) objects[0].place = s.place;
    if (s.relation !== null) p.relation = s.relation;
    found[s.kind].push(p);
  }
  return [...found.one, ...found.two];
}
