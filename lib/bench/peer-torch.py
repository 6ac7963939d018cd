"""The PyTorch peer of `latte-flow bench`: times the understanding measures on the same random
Qwen2-VL-2B-shaped checkpoint the engine runs, in a Python the user points to (--python).

    python peer-torch.py --model DIR --threads N [--dtype bf16|f32] [--probe]

Implementation, the first that imports:
  transformers  Qwen2VLForConditionalGeneration (the vision tower, the text model, the LM head)
  reference     tools/reference/latte_ref, this repository's PyTorch reference (a checkout only: the
                package does not ship it), so the peer can be exercised where transformers is absent

--probe prints one JSON line {"impl", "version", "torch"} and exits; exit 3: torch missing, exit 4:
neither implementation importable. Otherwise a JSON-line server on stdin/stdout (notes go to stderr):
  {"op": "setup", "measure": "vlm.encode", "grid": [1, 32, 32]}           -> {"ok": true} | {"skip": why}
  {"op": "setup", "measure": "vlm.prefill", "ids": [...]}
  {"op": "setup", "measure": "vlm.decode", "ids": [...], "tokens": 16}
  {"op": "run"}                                                           -> {"ms": <this process's clock>}
  {"op": "quit"}
Each run is timed here (time.perf_counter around the work), so the figures carry no pipe latency. The
workloads are the engine's (lib/bench/understanding.ts sends them): an image's patches (random values:
they do not change the work), text ids at positions 0..S-1 on the three M-RoPE axes, greedy decode.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def note(msg):
    print(f"peer-torch: {msg}", file=sys.stderr, flush=True)


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


try:
    import torch
except ImportError as e:
    note(f"PyTorch is not importable by {sys.executable}: {e}")
    sys.exit(3)


def pick_impl():
    try:
        import transformers
        from transformers import Qwen2VLForConditionalGeneration  # noqa: F401  (Qwen2-VL: transformers >= 4.45)
        return "transformers", transformers.__version__
    except ImportError as e:
        why = str(e)
    ref = os.path.join(ROOT, "tools", "reference")
    if os.path.isdir(os.path.join(ref, "latte_ref")):
        sys.path.insert(0, ref)
        try:
            import latte_ref  # noqa: F401
            return "reference", "latte_ref (this checkout's PyTorch reference)"
        except ImportError:
            pass
    note(f"transformers with Qwen2-VL is not importable by {sys.executable}: {why}")
    sys.exit(4)


class Transformers:
    """Qwen2VLForConditionalGeneration, its parts called directly (the same work as the engine's)."""

    def __init__(self, model_dir, dtype):
        from transformers import Qwen2VLForConditionalGeneration
        try:
            m = Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
        except TypeError:  # transformers < 4.56 names it torch_dtype
            m = Qwen2VLForConditionalGeneration.from_pretrained(model_dir, torch_dtype=dtype)
        self.m = m.eval()
        inner = m.model
        # transformers 4.45-4.51: m.visual and m.model (the text model); later: m.model.visual, m.model.language_model
        self.visual = getattr(m, "visual", None) or inner.visual
        self.text = getattr(inner, "language_model", None) or inner
        self.lm_head = m.lm_head
        self.dtype = dtype

    def encode(self, pixels, grid):
        return self.visual(pixels.to(self.dtype), grid_thw=grid)

    def prefill(self, ids):
        s = ids.numel()
        pos = torch.arange(s).view(1, 1, s).expand(3, 1, s)
        out = self.text(input_ids=ids[None], position_ids=pos, use_cache=True)
        return self.lm_head(out[0][:, -1]), (out.past_key_values, s)

    def decode(self, token, state):
        past, s = state
        pos = torch.full((3, 1, 1), s, dtype=torch.long)
        out = self.text(input_ids=token.view(1, 1), position_ids=pos, past_key_values=past, use_cache=True)
        return self.lm_head(out[0][:, -1]), (out.past_key_values, s + 1)


class Reference:
    """latte_ref.vlm.Qwen2VL: the vision tower, the decoder with its KV cache, the tied LM head."""

    def __init__(self, model_dir, dtype):
        from latte_ref.vlm import Qwen2VL
        self.m = Qwen2VL.from_pretrained(model_dir, dtype=dtype)
        self.dtype = dtype

    def encode(self, pixels, grid):
        return self.m.visual(pixels.to(self.dtype), grid)

    def prefill(self, ids):
        s = ids.numel()
        x = self.m.model.embed_tokens(ids)[None]
        cos, sin = self.m.rope(torch.arange(s).view(1, 1, s).expand(3, 1, s))
        h, cache = self.m.model(x, cos, sin)
        return h[0, -1] @ self.m.lm_weight().t(), (cache, s)

    def decode(self, token, state):
        cache, s = state
        x = self.m.model.embed_tokens(token.view(1, 1))
        cos, sin = self.m.rope(torch.full((3, 1, 1), s, dtype=torch.long))
        h, cache = self.m.model(x, cos, sin, cache)
        return h[0, -1] @ self.m.lm_weight().t(), (cache, s + 1)


def setup(model, cmd, patch_dim):
    """Returns a function that does one repetition and returns its milliseconds."""
    measure = cmd["measure"]
    if measure == "vlm.encode":
        grid = torch.tensor([cmd["grid"]], dtype=torch.long)
        n = int(grid.prod())
        g = torch.Generator().manual_seed(0)
        pixels = torch.randn(n, patch_dim, generator=g)

        def run():
            t0 = time.perf_counter()
            model.encode(pixels, grid)
            return (time.perf_counter() - t0) * 1e3
        return run
    if measure == "vlm.prefill":
        ids = torch.tensor(cmd["ids"], dtype=torch.long)

        def run():
            t0 = time.perf_counter()
            logits, _ = model.prefill(ids)
            int(logits.argmax())  # the engine reads its logits back too
            return (time.perf_counter() - t0) * 1e3
        return run
    if measure == "vlm.decode":
        ids = torch.tensor(cmd["ids"], dtype=torch.long)
        n = int(cmd["tokens"])

        def run():
            logits, state = model.prefill(ids)
            tok = logits.reshape(-1).argmax()
            t0 = time.perf_counter()
            for _ in range(n):  # greedy, as the engine's decode
                logits, state = model.decode(tok, state)
                tok = logits.reshape(-1).argmax()
            int(tok)
            return (time.perf_counter() - t0) * 1e3 / n
        return run
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--probe", action="store_true")
    args = ap.parse_args()
    impl, version = pick_impl()
    if args.probe:
        reply({"impl": impl, "version": version, "torch": torch.__version__})
        return
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set (only possible before any parallel work)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with open(os.path.join(args.model, "config.json")) as f:
        vc = json.load(f)["vision_config"]
    patch_dim = vc["in_channels"] * vc["temporal_patch_size"] * vc["patch_size"] ** 2
    t0 = time.perf_counter()
    model = (Transformers if impl == "transformers" else Reference)(args.model, dtype)
    note(f"{impl} {version}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}: loaded in {time.perf_counter() - t0:.1f} s")
    reply({"ready": True})
    run = None
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.get("op")
        try:
            with torch.inference_mode():
                if op == "setup":
                    run = setup(model, cmd, patch_dim)
                    reply({"ok": True} if run else {"skip": f"no such measure here: {cmd.get('measure')}"})
                elif op == "run":
                    reply({"ms": run()})
                elif op == "quit":
                    break
                else:
                    reply({"error": f"unknown op {op}"})
        except Exception as e:  # the runner records it against this measure and goes on
            reply({"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
