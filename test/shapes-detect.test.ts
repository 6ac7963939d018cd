// ShapesEval detector and scorer (docs/shapes-world.md, "ShapesEval") against images from a minimal
// rasteriser written here from the doc's "Drawing" section (independent of lib/shapes/world.ts).
import test from 'ava';
import {
  detectObjects, scorePrompt, shapesEval, SHAPE_COLOURS,
  type ColourName, type EvalPrompt, type PlaceName, type RelationName, type ShapeName, type SizeName,
} from '../lib/shapes/detect.ts';
import { LatteError } from '../lib/errors.ts';

const N = 64;
const SHAPES: ShapeName[] = ['circle', 'square', 'triangle'];
const COLOURS = Object.keys(SHAPE_COLOURS) as ColourName[];
const SIZES: Record<SizeName, number> = { small: 14, large: 24 };
const PLACES: Record<PlaceName, [number, number]> = { left: [16, 32], right: [48, 32], top: [32, 16], bottom: [32, 48], center: [32, 32] };
const RELATIONS: RelationName[] = ['to the left of', 'to the right of', 'above', 'below'];

interface Draw { shape: ShapeName; colour: ColourName; size: number; cx: number; cy: number }

/** The doc's drawing: 4x4 subsamples at 1/8-pixel units, integer coverage blend over the current pixel. */
function render(shapes: Draw[]): Uint8Array {
  const img = new Uint8Array(N * N * 3).fill(255);
  for (const s of shapes) {
    const Cx = 8 * s.cx, Cy = 8 * s.cy, half = 4 * s.size;
    // triangle (apex up), vertices ordered apex, base right, base left so that the interior has all
    // three edge functions (B - A) x (P - A) >= 0 with y pointing down
    const [ax, ay, bx, by, cx, cy] = [Cx, Cy - half, Cx + half, Cy + half, Cx - half, Cy + half];
    const edge = (x0: number, y0: number, x1: number, y1: number, X: number, Y: number) => (x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0);
    const inside = (X: number, Y: number): boolean => {
      const dx = X - Cx, dy = Y - Cy;
      if (s.shape === 'circle') return dx * dx + dy * dy <= half * half;
      if (s.shape === 'square') return Math.abs(dx) <= half && Math.abs(dy) <= half;
      return edge(ax, ay, bx, by, X, Y) >= 0 && edge(bx, by, cx, cy, X, Y) >= 0 && edge(cx, cy, ax, ay, X, Y) >= 0;
    };
    const col = SHAPE_COLOURS[s.colour];
    const r = Math.ceil(s.size / 2) + 1;
    for (let y = Math.max(0, s.cy - r); y < Math.min(N, s.cy + r); y++) {
      for (let x = Math.max(0, s.cx - r); x < Math.min(N, s.cx + r); x++) {
        let c = 0;
        for (let ky = 0; ky < 4; ky++) for (let kx = 0; kx < 4; kx++) if (inside(8 * x + 1 + 2 * kx, 8 * y + 1 + 2 * ky)) c++;
        if (c === 0) continue;
        const p = 3 * (y * N + x);
        for (let ch = 0; ch < 3; ch++) img[p + ch] = (img[p + ch] * (16 - c) + col[ch] * c + 8) >> 4;
      }
    }
  }
  return img;
}

/** A 3x3 box blur, applied once (edges clamped, rounded to nearest). */
function blur(img: Uint8Array): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let y = 0; y < N; y++) {
    const rows = [Math.max(0, y - 1), y, Math.min(N - 1, y + 1)];
    for (let x = 0; x < N; x++) {
      const cols = [Math.max(0, x - 1), x, Math.min(N - 1, x + 1)];
      let r = 0, g = 0, b = 0;
      for (const yy of rows) for (const xx of cols) {
        const p = 3 * (yy * N + xx);
        r += img[p]; g += img[p + 1]; b += img[p + 2];
      }
      const q = 3 * (y * N + x);
      out[q] = Math.round(r / 9); out[q + 1] = Math.round(g / 9); out[q + 2] = Math.round(b / 9);
    }
  }
  return out;
}

// Centres are whole pixels, so a jitter only translates the same pixel pattern: the extremes and
// zero cover the place regions' margins.
const JITTER = [-3, 0, 3];

function oneCase(shape: ShapeName, colour: ColourName, size: SizeName, place: PlaceName, jx: number, jy: number) {
  const [px, py] = PLACES[place];
  const prompt: EvalPrompt = {
    caption: `a ${size} ${colour} ${shape} ${place === 'center' ? 'in the center' : `on the ${place}`}`,
    kind: 'one',
    objects: [{ shape, colour, size, place }],
  };
  return { prompt, draw: [{ shape, colour, size: SIZES[size], cx: px + jx, cy: py + jy }] as Draw[] };
}

/** Every shape, colour, size, place and jitter (rendered once, shared by the tests). */
let singlesMemo: { prompt: EvalPrompt; draw: Draw[]; img: Uint8Array }[] | undefined;
function allSingles() {
  return (singlesMemo ??= makeSingles().map((c) => ({ ...c, img: render(c.draw) })));
}
function makeSingles() {
  const cases = [];
  for (const shape of SHAPES) for (const colour of COLOURS) for (const size of ['small', 'large'] as SizeName[])
    for (const place of Object.keys(PLACES) as PlaceName[]) for (const jx of JITTER) for (const jy of JITTER)
      cases.push(oneCase(shape, colour, size, place, jx, jy));
  return cases;
}

/** A and B's centres for a relation, with the given jitters (x and y of A, then of B). */
function relationPlaces(rel: RelationName, j: [number, number, number, number]): [[number, number], [number, number]] {
  const horizontal = rel === 'to the left of' || rel === 'to the right of';
  // first = the left (or upper) one, second = the right (or lower) one
  const first: [number, number] = horizontal ? [16 + j[0], 32 + j[1]] : [32 + j[0], 16 + j[1]];
  const second: [number, number] = horizontal ? [48 + j[2], 32 + j[3]] : [32 + j[2], 48 + j[3]];
  return rel === 'to the left of' || rel === 'above' ? [first, second] : [second, first];
}

function twoCase(sa: ShapeName, ca: ColourName, sb: ShapeName, cb: ColourName, rel: RelationName, j: [number, number, number, number]) {
  const [[ax, ay], [bx, by]] = relationPlaces(rel, j);
  const prompt: EvalPrompt = { caption: `a ${ca} ${sa} ${rel} a ${cb} ${sb}`, kind: 'two', objects: [{ shape: sa, colour: ca }, { shape: sb, colour: cb }], relation: rel };
  const draw: Draw[] = [{ shape: sa, colour: ca, size: 14, cx: ax, cy: ay }, { shape: sb, colour: cb, size: 14, cx: bx, cy: by }];
  return { prompt, draw };
}

/** Every shape pair, ordered distinct-colour pair and relation; jitters at the extremes, cycled. */
let pairsMemo: { prompt: EvalPrompt; draw: Draw[]; img: Uint8Array }[] | undefined;
function allPairs() {
  return (pairsMemo ??= makePairs().map((c) => ({ ...c, img: render(c.draw) })));
}
function makePairs() {
  const cases = [];
  let k = 0;
  for (const sa of SHAPES) for (const sb of SHAPES) for (const ca of COLOURS) for (const cb of COLOURS) {
    if (ca === cb) continue;
    for (const rel of RELATIONS) {
      const horizontal = rel === 'to the left of' || rel === 'to the right of';
      const [m, o] = horizontal ? [3, 4] : [4, 3]; // jitter along the relation's axis, across it
      const sign = (bit: number) => ((k >> bit) & 1 ? 1 : -1);
      const j: [number, number, number, number] = horizontal
        ? [sign(0) * m, sign(1) * o, sign(2) * m, sign(3) * o]
        : [sign(1) * m, sign(0) * o, sign(3) * m, sign(2) * o];
      cases.push(twoCase(sa, ca, sb, cb, rel, j));
      k++;
    }
  }
  return cases;
}

test('clean renders of every shape, colour, size, place and jitter score 1.0 in every category', (t) => {
  const singles = allSingles();
  const pairs = allPairs();
  const all = [...singles, ...pairs];
  const res = shapesEval(all.map((c) => c.prompt), all.map((c) => c.img));
  const failed = res.perPrompt.map((s, i) => [s, all[i].prompt.caption] as const).filter(([s]) => !s.count || s.single === false || s.colour === false || s.position === false || s.relation === false);
  t.deepEqual(failed.slice(0, 5).map(([s, c]) => `${c}: ${JSON.stringify(s)}`), []);
  t.deepEqual([res.single, res.colour, res.position, res.count, res.relation, res.overall], [1, 1, 1, 1, 1, 1]);
  t.is(res.perPrompt.length, singles.length + pairs.length);
  t.log(`${singles.length} single-object and ${pairs.length} two-object images`);
});

test('objects: colour, centroid, bounding box and pixel count of clean shapes', (t) => {
  // a large red square at (32, 32): 24 x 24 fully covered pixels, 8 px + 1 / 8 sampling
  const [sq] = detectObjects(render([{ shape: 'square', colour: 'red', size: 24, cx: 32, cy: 32 }]));
  t.deepEqual(sq, { colour: 'red', shape: 'square', cx: 32, cy: 32, bbox: { x0: 20, y0: 20, x1: 43, y1: 43 }, pixels: 576 });
  const [c] = detectObjects(render([{ shape: 'circle', colour: 'blue', size: 14, cx: 20, cy: 40 }]));
  t.is(c.shape, 'circle');
  t.is(c.colour, 'blue');
  t.true(Math.abs(c.cx - 20) < 0.5 && Math.abs(c.cy - 40) < 0.5);
  // the triangle's centroid sits a third of the half size below the centre (plus the lost apex)
  const [tr] = detectObjects(render([{ shape: 'triangle', colour: 'yellow', size: 24, cx: 32, cy: 32 }]));
  t.is(tr.shape, 'triangle');
  t.true(Math.abs(tr.cx - 32) < 0.5 && tr.cy > 32 + 4 - 0.5 && tr.cy < 32 + 6, `${tr.cy}`);
  // two objects, raster order of their first pixel
  const two = detectObjects(render([{ shape: 'circle', colour: 'green', size: 14, cx: 48, cy: 16 }, { shape: 'triangle', colour: 'purple', size: 14, cx: 16, cy: 48 }]));
  t.deepEqual(two.map((o) => [o.colour, o.shape]), [['green', 'circle'], ['purple', 'triangle']]);
  t.deepEqual(detectObjects(new Uint8Array(N * N * 3).fill(255)), []);
});

test('margins of the shape thresholds on clean renders (logged)', (t) => {
  // how far the clean shapes are from the triangle (top < 38%) and square (corners >= 70%) thresholds
  const stats: Record<string, [number, number, number, number]> = {};
  for (const shape of SHAPES) for (const size of [14, 24]) {
    const key = `${shape} ${size}`;
    let [tmin, tmax, fmin, fmax] = [1, 0, 1, 0];
    for (const colour of COLOURS) {
      const img = render([{ shape, colour, size, cx: 32, cy: 32 }]);
      const [o] = detectObjects(img);
      const { x0, y0, x1, y1 } = o.bbox;
      const h = y1 - y0 + 1;
      let top = 0, corner = 0;
      const on = (x: number, y: number) => {
        const p = 3 * (y * N + x);
        const col = SHAPE_COLOURS[colour];
        return (img[p] - col[0]) ** 2 + (img[p + 1] - col[1]) ** 2 + (img[p + 2] - col[2]) ** 2 <= 3600 ? 1 : 0;
      };
      for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
        const tw = 2 * (y - y0) + 1;
        top += on(x, y) * (tw < h ? 1 : tw === h ? 0.5 : 0);
        const cornerCell = (x - x0 < 3 || x1 - x < 3) && (y - y0 < 3 || y1 - y < 3);
        if (cornerCell) corner += on(x, y);
      }
      tmin = Math.min(tmin, top / o.pixels); tmax = Math.max(tmax, top / o.pixels);
      fmin = Math.min(fmin, corner / 36); fmax = Math.max(fmax, corner / 36);
    }
    stats[key] = [tmin, tmax, fmin, fmax].map((v) => Math.round(v * 1000) / 1000) as [number, number, number, number];
  }
  for (const [k, [a, b, c, d]] of Object.entries(stats)) t.log(`${k}: top-half fraction ${a}..${b}, corner fill ${c}..${d}`);
  for (const size of [14, 24]) {
    t.true(stats[`triangle ${size}`][1] < 0.38);
    t.true(stats[`circle ${size}`][0] >= 0.38 && stats[`square ${size}`][0] >= 0.38);
    t.true(stats[`square ${size}`][2] >= 0.7 && stats[`circle ${size}`][3] < 0.7);
  }
});

test('wrong images score as wrong', (t) => {
  const one = oneCase('circle', 'red', 'large', 'left', 1, -2);
  const good = render(one.draw);
  const score = (p: EvalPrompt, img: Uint8Array) => {
    const s = scorePrompt(p, img);
    return { single: s.single, colour: s.colour, position: s.position, count: s.count, relation: s.relation };
  };
  t.deepEqual(score(one.prompt, good), { single: true, colour: true, position: true, count: true, relation: undefined });
  // wrong colour
  t.deepEqual(score(one.prompt, render([{ ...one.draw[0], colour: 'orange' }])), { single: true, colour: false, position: true, count: true, relation: undefined });
  // wrong shape
  for (const shape of ['square', 'triangle'] as ShapeName[])
    t.deepEqual(score(one.prompt, render([{ ...one.draw[0], shape }])), { single: false, colour: true, position: true, count: true, relation: undefined });
  // wrong place
  t.deepEqual(score(one.prompt, render([{ ...one.draw[0], cx: 48 }])), { single: true, colour: true, position: false, count: true, relation: undefined });
  t.false(scorePrompt(oneCase('circle', 'red', 'small', 'center', 0, 0).prompt, render([{ ...one.draw[0], size: 14, cx: 32, cy: 16 }])).position);
  // an extra object: single, colour, position and count all fail (they ask for exactly one object)
  const extra = render([...one.draw, { shape: 'square', colour: 'blue', size: 14, cx: 48, cy: 48 }]);
  t.deepEqual(score(one.prompt, extra), { single: false, colour: false, position: false, count: false, relation: undefined });
  // empty image
  const empty = new Uint8Array(N * N * 3).fill(255);
  t.deepEqual(score(one.prompt, empty), { single: false, colour: false, position: false, count: false, relation: undefined });

  const two = twoCase('triangle', 'green', 'square', 'purple', 'to the left of', [0, 0, 0, 0]);
  const rel = (p: EvalPrompt, img: Uint8Array) => { const s = scorePrompt(p, img); return [s.count, s.relation]; };
  t.deepEqual(rel(two.prompt, render(two.draw)), [true, true]);
  // swapped relation: the same objects, B on the left
  t.deepEqual(rel(two.prompt, render(twoCase('triangle', 'green', 'square', 'purple', 'to the right of', [0, 0, 0, 0]).draw)), [true, false]);
  for (const r of ['to the right of', 'above', 'below'] as RelationName[]) t.false(scorePrompt({ ...two.prompt, relation: r }, render(two.draw)).relation);
  // swapped colours, wrong shape, wrong colour
  t.deepEqual(rel(two.prompt, render([{ ...two.draw[0], colour: 'purple' }, { ...two.draw[1], colour: 'green' }])), [true, false]);
  t.deepEqual(rel(two.prompt, render([{ ...two.draw[0], shape: 'circle' }, two.draw[1]])), [true, false]);
  t.deepEqual(rel(two.prompt, render([two.draw[0], { ...two.draw[1], colour: 'blue' }])), [true, false]);
  // too close: dx < 8
  t.deepEqual(rel(two.prompt, render([{ ...two.draw[0], cx: 24, cy: 20 }, { ...two.draw[1], cx: 31, cy: 44 }])), [true, false]);
  t.deepEqual(rel(two.prompt, render([{ ...two.draw[0], cx: 24, cy: 20 }, { ...two.draw[1], cx: 32, cy: 44 }])), [true, true]);
  // an extra object, one object, none
  t.deepEqual(rel(two.prompt, render([...two.draw, { shape: 'circle', colour: 'red', size: 14, cx: 32, cy: 12 }])), [false, false]);
  t.deepEqual(rel(two.prompt, render([two.draw[0]])), [false, false]);
  t.deepEqual(rel(two.prompt, empty), [false, false]);
  // a noise speck (< 12 pixels) is not an object
  const speck = render(two.draw);
  for (let y = 2; y < 5; y++) for (let x = 2; x < 5; x++) speck.set(SHAPE_COLOURS.red, 3 * (y * N + x));
  t.deepEqual(rel(two.prompt, speck), [true, true]);

  // the aggregate: category means and overall = mean of the five
  const res = shapesEval([one.prompt, one.prompt, two.prompt, two.prompt], [good, empty, render(two.draw), empty]);
  t.deepEqual([res.single, res.colour, res.position, res.count, res.relation], [0.5, 0.5, 0.5, 0.5, 0.5]);
  t.is(res.overall, 0.5);
  const r2 = shapesEval([one.prompt, two.prompt], [render([{ ...one.draw[0], colour: 'orange' }]), render(two.draw)]);
  t.deepEqual([r2.single, r2.colour, r2.position, r2.count, r2.relation, r2.overall], [1, 0, 1, 1, 1, 0.8]);
});

test('bad input is rejected', (t) => {
  t.throws(() => detectObjects(new Uint8Array(10)), { instanceOf: LatteError, message: /64x64 RGB/ });
  t.deepEqual(detectObjects(new Uint8Array(32 * 32 * 3).fill(255), 32), []);
  const one = oneCase('circle', 'red', 'large', 'left', 0, 0).prompt;
  t.throws(() => shapesEval([one], []), { instanceOf: LatteError, message: /1 prompts but 0 images/ });
  t.throws(() => scorePrompt({ ...one, kind: 'two' }, new Uint8Array(N * N * 3)), { instanceOf: LatteError });
  // a single object without a place (a bare prompt) is scored without a position
  t.is(scorePrompt({ ...one, objects: [{ shape: 'circle', colour: 'red' }] }, new Uint8Array(N * N * 3)).position, undefined);
});

test('a 3x3 box blur: large shapes still score 1.0; small shapes logged', (t) => {
  const singles = allSingles();
  const large = singles.filter((c) => c.prompt.objects[0].size === 'large');
  const rl = shapesEval(large.map((c) => c.prompt), large.map((c) => blur(c.img)));
  t.deepEqual([rl.single, rl.colour, rl.position, rl.count, rl.relation], [1, 1, 1, 1, NaN]);
  t.is(rl.overall, 1);

  const small = singles.filter((c) => c.prompt.objects[0].size === 'small');
  const rs = shapesEval(small.map((c) => c.prompt), small.map((c) => blur(c.img)));
  const byShape = SHAPES.map((shape) => {
    const idx = small.map((c, i) => [c, i] as const).filter(([c]) => c.prompt.objects[0].shape === shape);
    const ok = idx.filter(([, i]) => rs.perPrompt[i].single).length;
    const got: Record<string, number> = {};
    for (const [, i] of idx) for (const o of rs.perPrompt[i].objects) got[o.shape] = (got[o.shape] ?? 0) + 1;
    return `${shape} ${ok}/${idx.length} (detected as ${JSON.stringify(got)})`;
  });
  t.log(`blurred small shapes: single ${rs.single.toFixed(3)} colour ${rs.colour.toFixed(3)} position ${rs.position.toFixed(3)} count ${rs.count.toFixed(3)}; ${byShape.join('; ')}`);
  t.is(rs.count, 1);
  t.is(rs.colour, 1);
  t.is(rs.position, 1);

  const pairs = allPairs();
  const rp = shapesEval(pairs.map((c) => c.prompt), pairs.map((c) => blur(c.img)));
  t.log(`blurred two-object images (small shapes): count ${rp.count.toFixed(3)} relation ${rp.relation.toFixed(3)}`);
  t.is(rp.count, 1);
});
