"""The shapes world: seeded 64x64 scenes of one or two coloured shapes with captions and Q&A.

docs/shapes-world.md is the contract; lib/shapes/world.ts implements the same thing in TypeScript and
both produce the same examples byte for byte (test/fixtures/shapes_world.json holds the evidence).
Everything is integer arithmetic. Pure Python + numpy (no torch), so training can render fast:

    example(seed, i)       one example: dict(image, caption, qa, objects, kind, place, relation)
    examples(seed, start, n)
    render(objects)        the 64x64x3 uint8 image of a list of objects
    shapes_eval_prompts()  the fixed ShapesEval prompt set (100 single + 100 two-object captions)
"""
import functools

import numpy as np

IMAGE_SIZE = 64
SHAPES = ("circle", "square", "triangle")
COLOURS = (
    ("red", (220, 40, 40)),
    ("green", (40, 170, 60)),
    ("blue", (40, 80, 220)),
    ("yellow", (235, 200, 30)),
    ("purple", (140, 60, 180)),
    ("orange", (245, 130, 30)),
)
BACKGROUND = (255, 255, 255)
SIZES = (("small", 14), ("large", 24))  # circle diameter, square side, triangle base and height (px)
PLACES = (("left", (16, 32)), ("right", (48, 32)), ("top", (32, 16)), ("bottom", (32, 48)), ("center", (32, 32)))
RELATIONS = ("to the left of", "to the right of", "above", "below")
EVAL_SEED = 424242
EVAL_PER_KIND = 100

_RGB = dict(COLOURS)
_PX = dict(SIZES)
_U32 = 0xFFFFFFFF


class Mulberry32:
    """mulberry32 on a uint32 state (the JS original, with every step masked to 32 bits)."""

    def __init__(self, state):
        self.a = state & _U32

    def next(self):
        self.a = (self.a + 0x6D2B79F5) & _U32
        t = self.a
        t = ((t ^ (t >> 15)) * (t | 1)) & _U32
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & _U32)) & _U32
        return t ^ (t >> 14)

    def int(self, n):
        return self.next() % n


def stream_state(seed, i):
    """Example i of stream `seed` starts from its own state, so any example can be rendered alone."""
    return (seed * 1000003 + i) & _U32


def inside(shape, dx, dy, half):
    """The spec's inside test; dx, dy = subsample minus centre and half = 4 * size, all in 1/8 px.
    Works on Python ints and on numpy integer arrays."""
    if shape == "circle":
        return dx * dx + dy * dy <= half * half
    if shape == "square":
        return (abs(dx) <= half) & (abs(dy) <= half)
    if shape == "triangle":
        # apex (0, -half), base corners (+-half, half): edge functions of apex -> right -> left, divided by half
        return (half - dy >= 0) & (half + dy - 2 * dx >= 0) & (half + dy + 2 * dx >= 0)
    raise ValueError(f"unknown shape {shape!r}")


@functools.lru_cache(maxsize=None)
def _stamp(shape, size):
    """Coverage (0..16) of a shape around an integer-pixel centre. Centres sit on whole pixels, so the
    subsample offsets 8 (x - cx) + 1 + 2k do not depend on the centre: one stamp per (shape, size) gives
    exactly the per-pixel spec, and rendering becomes a paste. Returns (oy, ox, coverage) with the
    coverage's top-left pixel at (cy + oy, cx + ox)."""
    r = size // 2 + 2  # a margin past the shape's extent (half = size / 2 px)
    d = np.arange(-r, r + 1, dtype=np.int64)
    sub = (8 * d[:, None] + 1 + 2 * np.arange(4, dtype=np.int64)[None, :]).reshape(-1)  # [pixel * 4 + k]
    hit = inside(shape, sub[None, :], sub[:, None], 4 * size)  # [Y subsample, X subsample]
    n = d.size
    cov = hit.reshape(n, 4, n, 4).sum(axis=(1, 3)).astype(np.int32)
    ys, xs = np.nonzero(cov)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    cov = cov[y0:y1, x0:x1]
    cov.setflags(write=False)
    return int(y0 - r), int(x0 - r), cov


def render(objects):
    """The image of `objects` (dicts with shape, colour, size names and integer centre cx, cy), drawn in
    order over the white background: pixel = (under * (16 - c) + colour * c + 8) >> 4 per channel."""
    img = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.int32)
    img[:] = BACKGROUND
    for o in objects:
        oy, ox, cov = _stamp(o["shape"], _PX[o["size"]])
        y0, x0 = o["cy"] + oy, o["cx"] + ox
        h, w = cov.shape
        # clip to the image (the example generator never needs it; render() accepts any centre)
        ty0, tx0 = max(y0, 0), max(x0, 0)
        ty1, tx1 = min(y0 + h, IMAGE_SIZE), min(x0 + w, IMAGE_SIZE)
        if ty0 >= ty1 or tx0 >= tx1:
            continue
        c = cov[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0, None]
        region = img[ty0:ty1, tx0:tx1]
        region[:] = (region * (16 - c) + np.asarray(_RGB[o["colour"]], dtype=np.int32) * c + 8) >> 4
    return img.astype(np.uint8)


def _scene(seed, i):
    """Everything of example i except the image, in the spec's draw order."""
    rng = Mulberry32(stream_state(seed, i))
    if rng.int(2) == 0:
        shape, colour = SHAPES[rng.int(3)], COLOURS[rng.int(6)][0]
        size, (place, (px, py)) = SIZES[rng.int(2)][0], PLACES[rng.int(5)]
        cx = px + rng.int(7) - 3
        cy = py + rng.int(7) - 3
        objects = [dict(shape=shape, colour=colour, size=size, cx=cx, cy=cy)]
        where = "in the center" if place == "center" else f"on the {place}"
        caption = f"a {size} {colour} {shape} {where}"
        kind, relation = "one", None
    else:
        sa, ca, sb = rng.int(3), rng.int(6), rng.int(3)
        cb = rng.int(6)
        while cb == ca:
            cb = rng.int(6)
        rel = rng.int(4)
        # "left of" / "above": A takes the low coordinate (16) on the relation axis; the others swap
        a_base, b_base = (16, 48) if rel in (0, 2) else (48, 16)
        a_main, b_main = a_base + rng.int(7) - 3, b_base + rng.int(7) - 3  # relation axis: A, then B
        a_cross, b_cross = 32 + rng.int(9) - 4, 32 + rng.int(9) - 4  # other axis: A, then B
        if rel < 2:
            (ax, ay), (bx, by) = (a_main, a_cross), (b_main, b_cross)
        else:
            (ax, ay), (bx, by) = (a_cross, a_main), (b_cross, b_main)
        objects = [
            dict(shape=SHAPES[sa], colour=COLOURS[ca][0], size="small", cx=ax, cy=ay),
            dict(shape=SHAPES[sb], colour=COLOURS[cb][0], size="small", cx=bx, cy=by),
        ]
        relation, place, kind = RELATIONS[rel], None, "two"
        caption = f"a {COLOURS[ca][0]} {SHAPES[sa]} {relation} a {COLOURS[cb][0]} {SHAPES[sb]}"

    qa = []
    shapes = [o["shape"] for o in objects]
    for o in objects:
        if shapes.count(o["shape"]) == 1:
            qa.append((f"what colour is the {o['shape']}?", o["colour"]))
    for o in objects:  # colours are always distinct within an image
        qa.append((f"what shape is the {o['colour']} object?", o["shape"]))
    qa.append(("how many shapes are there?", "one" if len(objects) == 1 else "two"))
    for o in objects:
        qa.append((f"is there a {o['colour']} {o['shape']}?", "yes"))
    present = {(o["shape"], o["colour"]) for o in objects}
    while True:
        s, c = SHAPES[rng.int(3)], COLOURS[rng.int(6)][0]
        if (s, c) not in present:
            break
    qa.append((f"is there a {c} {s}?", "no"))
    if kind == "one":
        qa.append((f"where is the {objects[0]['shape']}?", place))
    qa.append(("describe the image.", caption))
    return dict(caption=caption, qa=qa, objects=objects, kind=kind, place=place, relation=relation)


def example(seed, i):
    """Example i of stream `seed`: dict(image uint8 [64, 64, 3], caption, qa [(question, answer)],
    objects [dict(shape, colour, size, cx, cy)], kind 'one' | 'two', place or None, relation or None)."""
    if not (isinstance(seed, int) and isinstance(i, int) and i >= 0):
        raise ValueError(f"example(seed, i) takes integers with i >= 0, got {seed!r}, {i!r}")
    ex = _scene(seed, i)
    ex["image"] = render(ex["objects"])
    return ex


def examples(seed, start, n):
    """Examples start .. start + n - 1 of stream `seed`, as a list."""
    return [example(seed, i) for i in range(start, start + n)]


def shapes_eval_prompts():
    """The ShapesEval prompts: the first 100 one-shape then the first 100 two-shape examples of stream
    424242, each dict(index, kind, caption, objects [dict(shape, colour, size)], and relation for kind
    'two'); a single object also has its place (the layout lib/shapes/detect.ts scores)."""
    found = {"one": [], "two": []}
    i = 0
    while min(len(v) for v in found.values()) < EVAL_PER_KIND:
        s = _scene(EVAL_SEED, i)
        if len(found[s["kind"]]) < EVAL_PER_KIND:
            objects = [dict(shape=o["shape"], colour=o["colour"], size=o["size"]) for o in s["objects"]]
            p = dict(index=i, kind=s["kind"], caption=s["caption"], objects=objects)
            if s["kind"] == "one":
                objects[0]["place"] = s["place"]
            else:
                p["relation"] = s["relation"]
            found[s["kind"]].append(p)
        i += 1
    return found["one"] + found["two"]
