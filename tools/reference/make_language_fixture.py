"""Write test/fixtures/shapes_language.json: the cross-language check of the shapes world's language
(docs/shapes-world.md, "Language"). test/shapes-language.test.ts makes the same text in TypeScript.

    /usr/bin/python3 tools/reference/make_language_fixture.py [--out test/fixtures/shapes_language.json]

Holds the train grammar's expanded frames and questions, and, for examples 0..59 of streams 7 and 424242 and both splits: the varied caption, the varied
questions with their answers, and the blank image's questions.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latte_ref import shapes_language as sl, shapes_world as sw  # noqa: E402

SEEDS, COUNT = (7, 424242), 60
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures",
                           "shapes_language.json")


def build():
    rows = []
    for seed in SEEDS:
        for i in range(COUNT):
            ex = sw._scene(seed, i)
            for split in sl.SPLITS:
                rows.append(dict(seed=seed, i=i, split=split, caption=sl.caption_variant(ex, seed, i, split),
                                 qa=[list(p) for p in sl.qa_variants(ex, seed, i, split)],
                                 blank=[list(p) for p in sl.blank_qa(seed, i, split)]))
    # the grammar's expansions themselves, so a frame the examples happen not to draw is still compared
    forms = dict(one=list(sl.ONE_FRAMES), two=list(sl.TWO_FRAMES),
                 questions={f: [list(t), list(h)] for f, (t, h) in sl.QUESTIONS.items()})
    return ("{\n \"forms\": " + json.dumps(forms) + ",\n \"rows\": [\n" + ",\n".join("  " + json.dumps(r) for r in rows)
            + "\n ]\n}\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    with open(args.out, "w") as f:
        f.write(build())
