"""The PyTorch reference (tools/reference/latte_ref) answering one question about one image: the baseline
the engine's understanding path is compared with.

    /usr/bin/python3 benchmarks/reference-vlm.py [--tokens 16] [--reps 7] [--threads 1,2] [--model DIR]

Workload (as tools/reference/make_fixtures.py's vlm_fixtures and latte_ref.pipeline.LatteFlow.answer):
the fixture image (test/fixtures/vlm_preprocess.safetensors "in.image", 45x71 RGB), the question
"describe the image.", chat.render + expand_image_pads + tokenize + preprocess_image + Qwen2VL.generate
(greedy) + decode. generate() is called without stop ids, so every answer has exactly --tokens tokens.

Per thread count (torch.set_num_threads; inter-op threads 1), after one warm-up answer:
  answer_ms            median over --reps of the whole answer above (wall clock)
  prefill_ms           median over --reps of Qwen2VL.prefill (vision tower + embed + decoder + LM head)
  decode_ms_per_token  median over --reps of (time of the tokens-1 decode_step calls) / (tokens-1)
Output: one JSON line per thread count on stdout; a human note on stderr. Exit code 3: torch missing.
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))

try:
    import torch
except ImportError as e:  # the TS wrapper turns exit code 3 into a clear error
    print(f"reference-vlm: PyTorch is not importable by {sys.executable}: {e}", file=sys.stderr)
    sys.exit(3)

from latte_ref import chat, preprocess, st                 # noqa: E402
from latte_ref.sampling import sample_token                # noqa: E402
from latte_ref.tokenizer import Tokenizer                  # noqa: E402
from latte_ref.vlm import Qwen2VL                          # noqa: E402

QUESTION = "describe the image."


def fixture_image():
    tensors, _ = st.load_file(os.path.join(ROOT, "test", "fixtures", "vlm_preprocess.safetensors"), ["in.image"])
    return tensors["in.image"].numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--model", default=os.path.join(ROOT, "test", "fixtures", "tiny-model", "vlm"))
    args = ap.parse_args(argv)
    n_tok = max(1, args.tokens)
    reps = max(5, args.reps)
    threads = [int(t) for t in args.threads.split(",") if t]

    torch.set_num_interop_threads(1)
    vlm = Qwen2VL.from_pretrained(args.model)
    tok = Tokenizer(os.path.join(args.model, "tokenizer.json"))
    pcfg = preprocess.load_preprocessor_config(os.path.join(args.model, "preprocessor_config.json"))
    img = fixture_image()

    @torch.no_grad()
    def answer():
        pv, grid = preprocess.preprocess_image(img, pcfg)
        text = chat.render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}])
        text = chat.expand_image_pads(text, [grid[0].tolist()], pcfg["merge_size"])
        ids = torch.tensor(tok.encode(text), dtype=torch.long)
        out = vlm.generate(ids, pv, grid, max_new_tokens=n_tok)    # greedy, no stop ids: exactly n_tok
        return out, tok.decode(out), ids.numel()

    # the same inputs for the prefill/decode split (prepared once: not part of either figure)
    pv0, grid0 = preprocess.preprocess_image(img, pcfg)
    text0 = chat.expand_image_pads(
        chat.render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]),
        [grid0[0].tolist()], pcfg["merge_size"])
    ids0 = torch.tensor(tok.encode(text0), dtype=torch.long)

    @torch.no_grad()
    def split():
        t0 = time.perf_counter()
        logits, state = vlm.prefill(ids0, pv0, grid0)
        t1 = time.perf_counter()
        out = [sample_token(logits[-1], 0.0)]
        for _ in range(n_tok - 1):
            last, state = vlm.decode_step(out[-1], state)
            out.append(sample_token(last, 0.0))
        t2 = time.perf_counter()
        return (t1 - t0) * 1e3, ((t2 - t1) * 1e3 / (n_tok - 1)) if n_tok > 1 else None, out

    for t in threads:
        torch.set_num_threads(t)
        ref, text, prompt_len = answer()                            # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            out, _, _ = answer()
            times.append((time.perf_counter() - t0) * 1e3)
            if out != ref:
                raise RuntimeError("reference-vlm: greedy answer changed between repetitions")
        split()                                                     # warm-up
        pre, dec = [], []
        for _ in range(reps):
            p, d, out = split()
            if out != ref:
                raise RuntimeError("reference-vlm: prefill/decode split disagrees with generate()")
            pre.append(p)
            if d is not None:
                dec.append(d)
        print(f"reference-vlm: {t} thread(s) (torch {torch.__version__}, get_num_threads={torch.get_num_threads()}), "
              f"prompt {prompt_len} tokens, image {img.shape[1]}x{img.shape[0]} -> grid {grid0[0].tolist()}, "
              f"answer {text!r}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
        rec = {"bench": "reference-vlm", "threads": t, "answer_ms": round(statistics.median(times), 3),
               "tokens": len(ref), "prompt_tokens": prompt_len, "reps": reps,
               "prefill_ms": round(statistics.median(pre), 3)}
        if dec:
            rec["decode_ms_per_token"] = round(statistics.median(dec), 4)
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
