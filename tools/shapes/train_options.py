"""train_shapes.py's command line: every option, and the checks that refuse a bad combination (exit code 2)
before any stage runs. Needs latte_ref on sys.path (train_shapes.py puts it there first)."""
import argparse
import os

import torch

from latte_ref.tokenizer import Tokenizer
from vlm_edits import question_only_words, vocab_pieces


def parse(root, rope_theta, argv=None):
    """The command line, checked: a bad value exits with code 2 (argparse) before any stage runs."""
    ap = argparse.ArgumentParser(description="Train the shapes-world LaTtE-Flow (tools/shapes/train_shapes.py).")
    ap.add_argument("--out", default=os.path.join(root, "models", "shapes"))
    ap.add_argument("--stages", default="tok,ae,vlm,gen,vanilla,world")
    ap.add_argument("--minutes-ae", type=float, default=12)
    ap.add_argument("--minutes-vlm", type=float, default=15)
    ap.add_argument("--minutes-gen", type=float, default=15)
    ap.add_argument("--minutes-vlm-vision", type=float, default=20)
    ap.add_argument("--lr-vlm-vision", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr-gen", type=float, default=1e-3)
    ap.add_argument("--patch-gen", type=int, default=1, help="latent patch size of the generation stream")
    ap.add_argument("--batch-gen", type=int, default=32)
    ap.add_argument("--pool-gen", type=int, default=24576, help="training latents encoded once and sampled from")
    ap.add_argument("--low-t-gen", type=int, default=1, help="train the noisiest quarter of t this many times as often")
    ap.add_argument("--template-gen", default=None, help="the generator's prompt_template (default: the chat template)")
    ap.add_argument("--batch-vlm", type=int, default=32)
    ap.add_argument("--rope-theta-vlm", type=float, default=rope_theta, help="the tiny decoder's M-RoPE theta")
    ap.add_argument("--rope-theta-gen", type=float, default=None,
                    help="the generation stream's M-RoPE theta (default: the VLM's; see train_shapes.ROPE_THETA)")
    ap.add_argument("--resume", action="store_true", help="continue the gen/vanilla stages from the saved streams")
    ap.add_argument("--language", action="store_true",
                    help="vlm: continue the saved VLM on the language mixture; gen/vanilla: varied captions too")
    ap.add_argument("--lr-vlm", type=float, default=1e-3)
    ap.add_argument("--caption-variants", type=int, default=2,
                    help="gen/vanilla with --language: varied captions per image beside the template one")
    ap.add_argument("--pool-seed", type=int, default=0,
                    help="gen/vanilla: offset of the latent pool's data seed (a continuation sees new images)")
    ap.add_argument("--vlm-seed", type=int, default=0,
                    help="vlm/vlm_vision: offset of the scene and question seeds (a continuation sees new data)")
    ap.add_argument("--two-object-weight", type=float, default=1.0,
                    help="draw two-object scenes this many times as often as one-object ones (every stage that learns "
                         "from scenes; the VLM's blank images keep their share)")
    ap.add_argument("--checkpoint-minutes", type=float, default=10,
                    help="save the model a stage trains this often (0: only at the end)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: train on the GPU (needs torch >= 2.0)")
    ap.add_argument("--prompt-table", action="store_true",
                    help="gen/vanilla: encode every pool caption up front (the default with --device cuda; on the "
                         "CPU it turns tens of minutes of one-at-a-time encodes into a few)")
    ap.add_argument("--bare-captions", action="store_true",
                    help="gen/vanilla --language: each one-shape image also has its bare prompt (\"a red square\") "
                         "as a caption, each two-shape image one more varied caption")
    ap.add_argument("--anchor-prompts", type=float, default=0.0,
                    help="vlm --language: weight of the pull keeping caption prompts' K/V where the generators "
                         "learnt them (0: off; then retrain both streams after)")
    ap.add_argument("--vision-depth", type=int, default=0,
                    help="vlm --language / vlm_vision: first grow the vision tower to this many blocks, each new one "
                         "starting as the identity (0: as saved)")
    ap.add_argument("--token-rows-from", type=int, default=0,
                    help="vlm --language: train only the embedding rows of token ids >= this (the vocab stage's new "
                         "words: the old vocabulary size); nothing else moves (0: the whole VLM)")
    ap.add_argument("--vocab-words", default=None,
                    help="vocab: grow only these question-only words, comma-separated as written (' things': the "
                         "space that comes before a word inside a sentence); default: all of them")
    ap.add_argument("--workers", type=int, default=0,
                    help="vlm stages: build batches in this many processes (0: in order here, the CPU recipe)")
    a = ap.parse_args(argv)
    if not a.two_object_weight > 0 or a.checkpoint_minutes < 0 or a.pool_seed < 0 or a.vlm_seed < 0:
        ap.error("--two-object-weight must be > 0, --checkpoint-minutes, --pool-seed and --vlm-seed >= 0")
    if a.workers < 0:
        ap.error("--workers must be >= 0")
    if a.vision_depth < 0 or (a.vision_depth and not ("vlm_vision" in a.stages.split(",") or
                                                      ("vlm" in a.stages.split(",") and a.language))):
        ap.error("--vision-depth must be >= 0 and needs the vlm_vision stage or the vlm stage with --language")
    if a.bare_captions and not a.language:
        ap.error("--bare-captions needs --language")
    if a.token_rows_from < 0 or (a.token_rows_from and (not a.language or "vlm" not in a.stages.split(",")
                                                         or a.anchor_prompts or a.vision_depth)):
        ap.error("--token-rows-from must be >= 0 and needs the vlm stage with --language, without --anchor-prompts or --vision-depth")
    if a.anchor_prompts < 0 or (a.anchor_prompts and not a.language):
        ap.error("--anchor-prompts must be >= 0 and needs --language")
    vocab_words = None if a.vocab_words is None else a.vocab_words.split(",")
    if vocab_words is not None and ("vocab" not in a.stages.split(",") or not all(vocab_words)):
        ap.error("--vocab-words needs the vocab stage and a comma-separated list of words")
    tok_path = os.path.join(a.out, "vlm", "tokenizer.json")
    if vocab_words and "tok" not in a.stages.split(",") and os.path.exists(tok_path):   # else the stage checks
        tok = Tokenizer(tok_path)
        unknown = set(vocab_pieces(tok, vocab_words)) - set(question_only_words(tok)[0])
        if unknown:
            ap.error(f"--vocab-words: not words only the questions use: {sorted(u.replace(chr(0x120), ' ') for u in unknown)}")
    if a.device not in ("cpu", "cuda"):
        ap.error("--device must be cpu or cuda")
    if a.device == "cuda" and not (hasattr(torch, "set_default_device") and torch.cuda.is_available()):
        ap.error("--device cuda needs torch >= 2.0 and a CUDA GPU it can see")
    a.vocab_words = vocab_words
    return a
