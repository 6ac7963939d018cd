"""Command line for the reference: answer a question about images, or draw an image from a prompt.

    /usr/bin/python3 tools/reference/run.py ask  MODEL_DIR "what colour is the circle?" --image a.ppm
    /usr/bin/python3 tools/reference/run.py draw MODEL_DIR "a small red circle" --seed 3 --out out.ppm
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latte_ref.pipeline import LatteFlow, read_image, write_ppm   # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ask")
    a.add_argument("model")
    a.add_argument("question")
    a.add_argument("--image", action="append", default=[])
    a.add_argument("--max-new-tokens", type=int, default=64)
    a.add_argument("--temperature", type=float, default=0.0)
    a.add_argument("--top-k", type=int, default=0)
    a.add_argument("--top-p", type=float, default=1.0)
    a.add_argument("--seed", type=int, default=0)
    d = sub.add_parser("draw")
    d.add_argument("model")
    d.add_argument("prompt")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--steps", type=int)
    d.add_argument("--sampler", choices=["euler", "heun"])
    d.add_argument("--guidance", type=float)
    d.add_argument("--shift", type=float)
    d.add_argument("--out", default="out.ppm")
    args = ap.parse_args(argv)
    if args.cmd == "ask":
        m = LatteFlow(args.model, need_generator=False)
        print(m.answer([read_image(p) for p in args.image], args.question, args.max_new_tokens,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed))
    else:
        m = LatteFlow(args.model)
        write_ppm(args.out, m.text_to_image(args.prompt, args.seed, args.steps, args.sampler, args.guidance, args.shift))
        print(args.out)


if __name__ == "__main__":
    main()
