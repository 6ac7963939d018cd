// The shapes world (docs/shapes-world.md): the TypeScript renderer against the Python one's fixture
// (tools/reference/make_shapes_fixture.py), plus properties of the scenes themselves.
import test from 'ava';
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { LatteError } from '../lib/errors.ts';
import {
  COLOURS,
  example,
  examples,
  IMAGE_SIZE,
  Mulberry32,
  PLACES,
  RELATIONS,
  render,
  SHAPES,
  shapesEvalPrompts,
  type Example,
  type ShapeObject,
} from '../lib/shapes/world.ts';

const fixture = JSON.parse(fs.readFileSync(new URL('./fixtures/shapes_world.json', import.meta.url), 'utf8'));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const N = 2000; // examples of stream 1 for the property checks
const stream: Example[] = examples(1, 0, N);

test('examples and images equal the Python reference byte for byte', (t) => {
  t.is(fixture.examples.length, 40);
  for (const want of fixture.examples) {
    const e = example(fixture.seed, want.i);
    t.is(sha256(e.image), want.sha256, `image of example ${want.i}`);
    const { image, ...rest } = e;
    t.deepEqual(rest, { caption: want.caption, qa: want.qa, objects: want.objects, kind: want.kind, place: want.place, relation: want.relation });
  }
});

test('ShapesEval prompts equal the Python reference', (t) => {
  const prompts = shapesEvalPrompts();
  t.is(prompts.length, fixture.eval_prompts_count);
  t.deepEqual([...prompts.slice(0, 10), ...prompts.slice(100, 110)], fixture.eval_prompts_head);
  t.is(createHash('sha256').update(JSON.stringify(prompts)).digest('hex'), fixture.eval_prompts_sha256);
  t.deepEqual(prompts.map((p) => p.kind), [...Array(100).fill('one'), ...Array(100).fill('two')]);
  for (const p of prompts) t.is(example(424242, p.index).caption, p.caption);
});

test('mulberry32 gives the reference sequence', (t) => {
  const r = new Mulberry32(0);
  t.deepEqual([r.next(), r.next(), r.next()], [1144304738, 1416247, 958946056]); // the JS original's output
});

test('examples are deterministic per (seed, i) and independent of how they are fetched', (t) => {
  for (const i of [0, 1, 17, 1999]) {
    const [a, b] = [example(1, i), example(1, i)];
    t.deepEqual(a, b);
    t.deepEqual(a, stream[i]);
  }
  t.deepEqual(examples(1, 5, 3), stream.slice(5, 8));
  // seeds are separate streams (almost surely different captions over 20 examples)
  t.notDeepEqual(examples(2, 0, 20).map((e) => e.caption), stream.slice(0, 20).map((e) => e.caption));
  // big and negative seeds wrap mod 2^32 instead of losing precision
  t.deepEqual(example(2 ** 40, 3), example(2 ** 40, 3));
  t.is(example(-1, 0).caption, example(2 ** 32 - 1, 0).caption);
});

test('bad arguments are E_ARG', (t) => {
  for (const f of [() => example(1.5, 0), () => example(0, -1), () => example(0, 0.5), () => examples(0, 0, -1)]) {
    const err = t.throws(f);
    t.true(err instanceof LatteError && err.code === 'E_ARG');
  }
  const bad = { shape: 'hexagon', colour: 'red', size: 'small', cx: 32, cy: 32 } as unknown as ShapeObject;
  t.throws(() => render([bad]), { message: /unknown shape/ });
});

/** Bounding box of the pixels an object changes when drawn alone. */
function bbox(o: ShapeObject): [x0: number, y0: number, x1: number, y1: number] {
  const img = render([o]);
  const box: [number, number, number, number] = [IMAGE_SIZE, IMAGE_SIZE, -1, -1];
  for (let p = 0; p < IMAGE_SIZE * IMAGE_SIZE; p++) {
    if (img[3 * p] === 255 && img[3 * p + 1] === 255 && img[3 * p + 2] === 255) continue;
    const [x, y] = [p % IMAGE_SIZE, Math.floor(p / IMAGE_SIZE)];
    box[0] = Math.min(box[0], x);
    box[1] = Math.min(box[1], y);
    box[2] = Math.max(box[2], x);
    box[3] = Math.max(box[3], y);
  }
  return box;
}

test('shapes stay inside the image and never touch: at least 2 background pixels between them', (t) => {
  let twos = 0;
  let minGap = Infinity;
  for (const e of stream) {
    const boxes = e.objects.map(bbox);
    for (const [x0, y0, x1, y1] of boxes) t.true(x0 >= 1 && y0 >= 1 && x1 <= IMAGE_SIZE - 2 && y1 <= IMAGE_SIZE - 2);
    if (boxes.length < 2) continue;
    twos++;
    const [a, b] = boxes;
    // pixels of the two shapes are at least as far apart (per axis) as their bounding boxes
    const gap = Math.max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3]) - 1;
    minGap = Math.min(minGap, gap);
  }
  t.true(twos > 0.4 * N && twos < 0.6 * N, `${twos} two-object scenes`);
  t.true(minGap >= 2, `min gap ${minGap}`);
});

test('every pixel is white or a blend of white with one of the objects colours; each colour is there', (t) => {
  const rgb = new Map<string, readonly number[]>(COLOURS.map((c) => [c.name, c.rgb]));
  for (const e of stream) {
    // packed RGB -> which object's colour blends to it (c = 0..16 coverage, spec formula over white)
    const blends = new Map<number, number>();
    e.objects.forEach((o, k) => {
      const col = rgb.get(o.colour)!;
      for (let c = 1; c <= 16; c++) {
        const [r, g, b] = col.map((v) => (255 * (16 - c) + v * c + 8) >> 4);
        blends.set((r << 16) | (g << 8) | b, k);
      }
    });
    const full = new Set<number>();
    let stray = 0;
    for (let p = 0; p < e.image.length; p += 3) {
      const px = (e.image[p] << 16) | (e.image[p + 1] << 8) | e.image[p + 2];
      if (px === 0xffffff) continue;
      if (!blends.has(px)) stray++;
      const col = rgb.get(e.objects[blends.get(px) ?? 0].colour)!;
      if (px === ((col[0] << 16) | (col[1] << 8) | col[2])) full.add(blends.get(px)!);
    }
    if (stray) return t.fail(`${stray} stray pixels in "${e.caption}"`);
    if (full.size !== e.objects.length) return t.fail(`missing an object colour in "${e.caption}"`);
  }
  t.pass();
});

const ONE = /^a (small|large) (\w+) (circle|square|triangle) (?:on the (left|right|top|bottom)|in the (center))$/;
const TWO = /^a (\w+) (circle|square|triangle) (to the left of|to the right of|above|below) a (\w+) (circle|square|triangle)$/;

test('captions parse back to the objects, and the Q&A agree with them', (t) => {
  const seen = new Set<string>();
  for (const e of stream) {
    const one = ONE.exec(e.caption);
    const two = TWO.exec(e.caption);
    if (e.kind === 'one') {
      t.truthy(one, e.caption);
      const [, size, colour, shape, side, center] = one!;
      const place = side ?? center;
      const o = e.objects[0];
      t.deepEqual([o.size, o.colour, o.shape, e.place], [size, colour, shape, place]);
      const at = PLACES.find((p) => p.name === place)!;
      t.true(Math.abs(o.cx - at.x) <= 3 && Math.abs(o.cy - at.y) <= 3);
      seen.add(place);
    } else {
      t.truthy(two, e.caption);
      const [, ca, sa, relation, cb, sb] = two!;
      const [a, b] = e.objects;
      t.deepEqual([a.colour, a.shape, relation, b.colour, b.shape, a.size, b.size], [ca, sa, e.relation, cb, sb, 'small', 'small']);
      t.not(ca, cb);
      const [dx, dy] = [b.cx - a.cx, b.cy - a.cy];
      const holds = { 'to the left of': dx >= 8, 'to the right of': -dx >= 8, above: dy >= 8, below: -dy >= 8 }[relation as (typeof RELATIONS)[number]];
      t.true(holds, e.caption);
      seen.add(relation);
    }
    for (const o of e.objects) t.true(COLOURS.some((c) => c.name === o.colour) && SHAPES.includes(o.shape));
    // the Q&A
    const answers = new Map(e.qa);
    t.is(answers.get('describe the image.'), e.caption);
    t.is(answers.get('how many shapes are there?'), e.kind);
    for (const o of e.objects) {
      t.is(answers.get(`what shape is the ${o.colour} object?`), o.shape);
      t.is(answers.get(`is there a ${o.colour} ${o.shape}?`), 'yes');
      const unique = e.objects.filter((p) => p.shape === o.shape).length === 1;
      t.is(answers.get(`what colour is the ${o.shape}?`), unique ? o.colour : undefined);
    }
    const no = e.qa.filter(([, a]) => a === 'no');
    t.is(no.length, 1);
    const [, c, s] = /^is there a (\w+) (\w+)\?$/.exec(no[0][0])!;
    t.false(e.objects.some((o) => o.colour === c && o.shape === s));
    if (e.kind === 'one') t.is(answers.get(`where is the ${e.objects[0].shape}?`), e.place!);
  }
  t.is(seen.size, PLACES.length + RELATIONS.length);
});
