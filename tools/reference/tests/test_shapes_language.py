"""The shapes world's language (docs/shapes-world.md, "Language"): the checked-in cross-language fixture
is what the module makes, the held-out frames never appear in the train split, answers stay the
templates', and the vocabulary covers every word of both splits."""
import os
import re
import unittest

import make_language_fixture
from latte_ref import shapes_language as sl, shapes_world as sw

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "test", "fixtures",
                       "shapes_language.json")


def words(t):
    return [w for w in re.split(r"[^a-z0-9'-]+", t.lower()) if w]


class ShapesLanguageTest(unittest.TestCase):
    def test_fixture_is_up_to_date(self):
        with open(FIXTURE) as f:
            self.assertEqual(f.read(), make_language_fixture.build(),
                             "regenerate: /usr/bin/python3 tools/reference/make_language_fixture.py")

    def test_held_out_frames_stay_out_of_training(self):
        train_q, held_q = set(), set()
        for i in range(300):
            ex = sw._scene(3, i)
            train_q.update(q.lower().rstrip("?.") for q, _ in sl.qa_variants(ex, 3, i) + sl.blank_qa(3, i))
            held_q.update(q.lower().rstrip("?.") for q, _ in sl.qa_variants(ex, 3, i, "heldout"))
            # the templates' answers, in order
            self.assertEqual([a for _, a in sl.qa_variants(ex, 3, i)][:len(ex["qa"])], [a for _, a in ex["qa"]])
            held = sl.caption_variant(ex, 3, i, "heldout").lower().rstrip(".")
            for o in ex["objects"]:
                self.assertIn(f"{o['colour']} {o['shape']}", held)
        self.assertFalse(train_q & held_q)
        self.assertGreater(len(held_q), 100)

    def test_the_train_grammar(self):
        self.assertEqual(sl.expand(["a [b|c][| d] e"], ["a c e"]), ("a b e", "a b d e", "a c d e"))
        self.assertFalse(set(sl.H_ONE_FRAMES) & set(sl.ONE_FRAMES))
        self.assertFalse(set(sl.H_TWO_FRAMES) & set(sl.TWO_FRAMES))
        for family, (train, held) in sl.QUESTIONS.items():
            self.assertFalse(set(train) & set(held), family)
            self.assertGreaterEqual(len(train), 10, family)      # many combinations per family, a few held out
            self.assertEqual(len(set(train)), len(train), family)

    def test_vocabulary_covers_both_splits(self):
        vocab = set(sl.vocabulary())
        for i in range(200):
            ex = sw._scene(4, i)
            for split in sl.SPLITS:
                texts = [sl.caption_variant(ex, 4, i, split)] + [t for qa in sl.qa_variants(ex, 4, i, split) for t in qa]
                for t in texts:
                    self.assertTrue(set(words(t)) <= vocab, t)
        self.assertNotIn("hexagon", vocab)

    def test_variants_differ_between_examples_and_seeds(self):
        caps = {sl.caption_variant(sw._scene(5, i), 5, i) for i in range(100)}
        self.assertGreater(len(caps), 80)
        ex = sw._scene(5, 0)
        self.assertEqual(sl.caption_variant(ex, 5, 0), sl.caption_variant(ex, 5, 0))
        with self.assertRaises(ValueError):
            sl.caption_variant(ex, 5, 0, "test")


if __name__ == "__main__":
    unittest.main()
