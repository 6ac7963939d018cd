"""The shapes world (docs/shapes-world.md): determinism, the stamp renderer against a direct per-subsample
reading of the spec, and the checked-in cross-language fixture (test/fixtures/shapes_world.json)."""
import os
import unittest

import numpy as np

import make_shapes_fixture
from latte_ref import shapes_world as sw

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "test", "fixtures",
                       "shapes_world.json")


def render_direct(objects):
    """The spec read literally: every pixel, every subsample, Python ints."""
    img = [[list(sw.BACKGROUND) for _ in range(sw.IMAGE_SIZE)] for _ in range(sw.IMAGE_SIZE)]
    for o in objects:
        rgb, half = dict(sw.COLOURS)[o["colour"]], 4 * dict(sw.SIZES)[o["size"]]
        for y in range(sw.IMAGE_SIZE):
            for x in range(sw.IMAGE_SIZE):
                c = sum(bool(sw.inside(o["shape"], 8 * x + 1 + 2 * kx - 8 * o["cx"], 8 * y + 1 + 2 * ky - 8 * o["cy"],
                                       half)) for ky in range(4) for kx in range(4))
                img[y][x] = [(u * (16 - c) + v * c + 8) >> 4 for u, v in zip(img[y][x], rgb)]
    return np.array(img, dtype=np.uint8)


class ShapesWorldTest(unittest.TestCase):
    def test_mulberry32_matches_the_js_original(self):
        r = sw.Mulberry32(0)
        self.assertEqual([r.next() for _ in range(3)], [1144304738, 1416247, 958946056])

    def test_deterministic_per_seed_and_index(self):
        run = sw.examples(3, 10, 5)
        for k, e in enumerate(run):
            again = sw.example(3, 10 + k)
            self.assertTrue(np.array_equal(e["image"], again["image"]))
            self.assertEqual({k: v for k, v in e.items() if k != "image"},
                             {k: v for k, v in again.items() if k != "image"})
        self.assertEqual(sw.example(-1, 0)["caption"], sw.example(2 ** 32 - 1, 0)["caption"])
        with self.assertRaises(ValueError):
            sw.example(0, -1)

    def test_stamps_equal_the_spec_read_literally(self):
        cases = [sw.example(5, i) for i in range(12)]
        # clipped at the corners (render accepts any centre; examples never need it)
        cases += [dict(objects=[dict(shape=s, colour="purple", size=z, cx=x, cy=y)])
                  for s in sw.SHAPES for z in ("small", "large") for x, y in ((2, 61), (62, 1))]
        for e in cases:
            self.assertTrue(np.array_equal(sw.render(e["objects"]), render_direct(e["objects"])), e["objects"])
        image = sw.example(5, 0)["image"]
        self.assertEqual((image.shape, image.dtype), ((64, 64, 3), np.uint8))

    def test_eval_prompts(self):
        prompts = sw.shapes_eval_prompts()
        self.assertEqual([p["kind"] for p in prompts], ["one"] * 100 + ["two"] * 100)
        for p in prompts[:5] + prompts[100:105]:
            self.assertEqual(sw.example(sw.EVAL_SEED, p["index"])["caption"], p["caption"])

    def test_fixture_is_up_to_date(self):
        with open(FIXTURE) as f:
            self.assertEqual(f.read(), make_shapes_fixture.build(),
                             "regenerate: /usr/bin/python3 tools/reference/make_shapes_fixture.py")


if __name__ == "__main__":
    unittest.main()
