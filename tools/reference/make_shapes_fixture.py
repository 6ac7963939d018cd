"""Write test/fixtures/shapes_world.json: the cross-language check of the shapes world
(docs/shapes-world.md). test/shapes-world.test.ts renders the same examples in TypeScript and compares.

    /usr/bin/python3 tools/reference/make_shapes_fixture.py [--out test/fixtures/shapes_world.json]

Holds examples 0..39 of stream 7 (image sha256 of the 64*64*3 row-major RGB bytes, caption, qa, objects,
kind, place, relation), the first 10 ShapesEval prompts of each kind, and the sha256 of the whole prompt list as
compact JSON (JSON.stringify's form, which json.dumps with separators=(",", ":") matches for ASCII).
"""
import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latte_ref import shapes_world as sw  # noqa: E402

SEED, COUNT, PROMPTS = 7, 40, 10
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures",
                           "shapes_world.json")


def build():
    """The fixture's text (deterministic: same bytes on every run)."""
    exs = []
    for i in range(COUNT):
        e = sw.example(SEED, i)
        exs.append(dict(i=i, sha256=hashlib.sha256(e["image"].tobytes()).hexdigest(), caption=e["caption"],
                        qa=[list(p) for p in e["qa"]], objects=e["objects"], kind=e["kind"],
                        place=e["place"], relation=e["relation"]))
    prompts = sw.shapes_eval_prompts()
    compact = json.dumps(prompts, separators=(",", ":")).encode()
    doc = dict(seed=SEED, examples=exs, eval_prompts_head=prompts[:PROMPTS] + prompts[100:100 + PROMPTS], eval_prompts_count=len(prompts),
               eval_prompts_sha256=hashlib.sha256(compact).hexdigest())
    # one example / prompt per line: small, and a diff shows which ones changed
    parts = []
    for k, v in doc.items():
        if isinstance(v, list):
            v = "[\n" + ",\n".join("  " + json.dumps(x) for x in v) + "\n ]"
        else:
            v = json.dumps(v)
        parts.append(f" {json.dumps(k)}: {v}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    with open(args.out, "w") as f:
        f.write(build())
    print(f"wrote {os.path.normpath(args.out)}")
