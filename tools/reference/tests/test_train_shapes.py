"""The shapes trainer's GPU-path pieces, checked on the CPU against the paths the CPU recipe runs:
PromptTable against PromptCache, batches built by worker processes against batches built in place, and
the vision tower's batched attention against its per-image loop; the prompt anchor; growing the vision tower,
alone or with the whole VLM; the stage log's checkpoint entries; usage errors."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tools", "shapes"))
import train_shapes as T  # noqa: E402

MODEL = os.path.join(ROOT, "models", "shapes")
TEMPLATE = "<|im_start|>{prompt}<|im_end|>"


def shipped():
    tok = T.Tokenizer(os.path.join(MODEL, "vlm", "tokenizer.json"))
    vlm = T.Qwen2VL.from_pretrained(os.path.join(MODEL, "vlm")).eval()
    return tok, vlm


class PromptTableTest(unittest.TestCase):
    def test_gathers_the_prompt_cache_rows(self):
        tok, vlm = shipped()
        exs = T.Stream(99).take(12)
        caps = [T.language_captions(e) for e in exs]
        table = T.PromptTable(vlm, tok, TEMPLATE, caps, chunk=7)   # chunks of uneven prompt lengths
        cache = T.PromptCache(vlm, tok, TEMPLATE)
        images, variant = torch.tensor([3, 7, 0, 11, 5]), torch.tensor([0, 2, 1, 1, 2])
        kv, lens, mask = table.batch(images, variant)
        kv2, lens2, mask2 = cache.batch([caps[i][j] for i, j in zip(images.tolist(), variant.tolist())])
        P = kv2[0][0].shape[1]
        self.assertTrue(torch.equal(lens, lens2))
        self.assertTrue(torch.equal(mask[:, :P], mask2))
        self.assertFalse(bool(mask[:, P:].any()))
        valid = mask2[:, :, None, None]
        for (k, v), (k2, v2) in zip(kv, kv2):
            # batched and one-at-a-time encodes round alike with the reference BLAS, not with OpenBLAS
            self.assertLess(float(((k[:, :P] - k2) * valid).abs().max()), 1e-4)
            self.assertLess(float(((v[:, :P] - v2) * valid).abs().max()), 1e-4)
        # the padding differs (pad-token K/V against zeros) but is masked: the loss is the same
        gen = T.GenerationStream.load(os.path.join(MODEL, "generator"))
        null = T.encode_prompts(vlm, tok, [gen.cfg.null_prompt], gen.cfg.prompt_template)
        x1 = torch.randn(5, 16, 8, 8, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            a = T.gen_loss(gen, x1, (kv, lens, mask), null, torch.Generator().manual_seed(5))
            b = T.gen_loss(gen, x1, (kv2, lens2, mask2), null, torch.Generator().manual_seed(5))
        self.assertLess(abs(float(a) - float(b)), 1e-5)

    def test_bare_captions_add_one_caption_to_every_image(self):
        for ex in T.Stream(98).take(20):
            caps, more = T.language_captions(ex), T.language_captions(ex, bare=True)
            self.assertEqual(more[:3], caps)
            if ex["kind"] == "one":
                o = ex["objects"][0]
                self.assertEqual(more[3], T.shapes_language.bare_prompt(o))
            else:
                self.assertNotIn(more[3], caps[:1])
                self.assertIn(ex["objects"][1]["shape"], more[3].lower())

    def test_every_image_needs_as_many_captions(self):
        tok, vlm = shipped()
        with self.assertRaises(AssertionError):
            T.PromptTable(vlm, tok, TEMPLATE, [["a red circle"], ["a blue square", "a small blue square"]])


def first_worker_batch(test, two_weight=1.0):
    """Batch 0 of three examples built by one worker process, checked against the same batch built in
    place (examples 0-2 of the stream, kept ones only with a weight; its rng seeded by the stage rng's
    first draw). Returns the parent's stream, to see how far it moved on."""
    tok, vlm = shipped()
    data = T.Stream(T.TRAIN_SEED + 7, two_weight)
    batches = T.vlm_batches(tok, vlm.cfg, data, np.random.RandomState(4), 3, True, workers=1,
                            tok_path=os.path.join(MODEL, "vlm", "tokenizer.json"))
    try:
        first = next(batches)
    finally:
        batches.close()
    seed = int(np.random.RandomState(4).randint(2**31))
    want = T.vlm_batch(tok, vlm.cfg, T.Stream(T.TRAIN_SEED + 7, two_weight).take(3), np.random.RandomState(seed), True)
    test.assertEqual(len(first), len(want))
    for got, ref in zip(first, want):
        test.assertEqual(got.dtype, ref.dtype)
        test.assertTrue(torch.equal(got, ref))
    return data


class WorkerBatchesTest(unittest.TestCase):
    def test_a_worker_builds_the_batch_built_in_place(self):
        data = first_worker_batch(self)
        self.assertEqual(data.i, 3 * 2)   # two batches were queued ahead for the one worker

    def test_no_workers_keeps_the_stream_order(self):
        tok, vlm = shipped()
        batches = T.vlm_batches(tok, vlm.cfg, T.Stream(5), np.random.RandomState(1), 2, False)
        got = next(batches)
        want = T.vlm_batch(tok, vlm.cfg, T.Stream(5).take(2), np.random.RandomState(1), False)
        for a, b in zip(got, want):
            self.assertTrue(torch.equal(a, b))


class WeightedStreamTest(unittest.TestCase):
    def test_weight_one_is_the_plain_stream(self):
        a, b = T.Stream(21), T.Stream(21, 1.0)
        self.assertEqual([e["at"] for e in a.take(7)], [e["at"] for e in b.take(7)])
        self.assertEqual((a.i, b.i), (7, 7))

    def test_two_object_scenes_come_w_times_as_often(self):
        for w, want in ((3.0, 0.75), (1 / 3, 0.25)):
            exs = T.Stream(21, w).take(800)
            self.assertEqual(len(exs), 800)
            share = sum(e["kind"] == "two" for e in exs) / len(exs)
            self.assertAlmostEqual(share, want, delta=0.05)
            at = [e["at"][1] for e in exs]
            self.assertEqual(at, sorted(set(at)))   # in stream order, none twice

    def test_skips_depend_only_on_the_index(self):
        # a worker starting at (seed, i) takes what the stream in order took from i on
        whole = T.Stream(21, 3.0)
        first = whole.take(5)
        rest = whole.take(6)
        part = T.Stream(21, 3.0)
        part.i = first[-1]["at"][1] + 1
        self.assertEqual([e["at"] for e in part.take(6)], [e["at"] for e in rest])
        self.assertGreaterEqual(whole.span(32), 32)

    def test_a_worker_batch_of_a_weighted_stream_matches_in_place(self):
        data = first_worker_batch(self, 3.0)
        self.assertEqual(data.i, 2 * data.span(3))


class VisionBatchedAttentionTest(unittest.TestCase):
    def test_equal_images_batched_equal_the_loop(self):
        tok, vlm = shipped()
        batch = T.vlm_batch(tok, vlm.cfg, T.Stream(5).take(3), np.random.RandomState(0), False)
        pixels, grid = batch[3], batch[4]
        blk = vlm.visual.blocks[0]
        with torch.no_grad():
            x = blk.norm1(vlm.visual.patch_embed(pixels))
            cos, sin = vlm.visual.rotary(grid)
            seg = vlm.visual.segments(grid)
            self.assertEqual(len(set(seg)), 1)
            batched = blk.attn(x, cos, sin, seg)
            # unequal segments take the loop: split the first image in two and compare the other two
            L = seg[0]
            loop = blk.attn(x, cos, sin, [L // 2, L // 2] + seg[1:])
        self.assertLess(float((batched[L:] - loop[L:]).abs().max()), 1e-6)
        self.assertFalse(torch.allclose(batched[:L], loop[:L]))   # (the split image attends differently)


class PromptAnchorTest(unittest.TestCase):
    def test_zero_for_the_frozen_vlm_and_pulls_a_moved_decoder_back(self):
        tok, vlm = shipped()
        anchor = T.PromptAnchor(vlm, tok, TEMPLATE, weight=3.0, batch=6)
        self.assertIn("", anchor.texts())                       # the null prompt is held too
        self.assertEqual(float(anchor.loss(vlm)), 0.0)
        with torch.no_grad():                                   # move one decoder layer: the K/V drift
            vlm.model.layers[2].self_attn.k_proj.weight.mul_(1.1)
        drift = anchor.loss(vlm)
        self.assertGreater(float(drift), 0.0)
        drift.backward()
        grad = vlm.model.layers[2].self_attn.k_proj.weight.grad
        self.assertGreater(float(grad.abs().sum()), 0.0)        # a gradient towards the old K/V
        self.assertIsNone(anchor.frozen.model.layers[2].self_attn.k_proj.weight.grad)
        # the anchor kept its own copy: relative error of a 10% scaled K is 0.01 in one layer's K, times 3
        self.assertLess(abs(float(drift) / 3.0 - 0.01), 0.002)


class GrowVisionTest(unittest.TestCase):
    def test_grown_blocks_start_as_the_identity_and_round_trip(self):
        _, vlm = shipped()
        torch.manual_seed(0)
        px, grid = torch.randn(256, 96), torch.tensor([[1, 16, 16]])
        with torch.no_grad():
            want = vlm.visual(px, grid)
            self.assertEqual(T.grow_vision_tower(vlm, 4), 2)
            self.assertEqual(T.grow_vision_tower(vlm, 4), 0)         # a rerun grows nothing
            self.assertEqual((len(vlm.visual.blocks), vlm.cfg.vision.depth), (4, 4))
            self.assertTrue(torch.equal(vlm.visual(px, grid), want))
        # a grown block learns: its zeroed projections get a gradient from the first step
        vlm.visual(px, grid).sum().backward()
        self.assertGreater(float(vlm.visual.blocks[3].mlp.fc2.weight.grad.abs().sum()), 0.0)
        with self.assertRaises(ValueError):
            T.grow_vision_tower(vlm, 3)
        d = tempfile.mkdtemp()
        T.save_vlm_atomically(vlm, d)
        back = T.Qwen2VL.from_pretrained(d)
        self.assertEqual(back.cfg.vision.depth, 4)
        with torch.no_grad():
            self.assertTrue(torch.equal(back.visual(px, grid), want))


class WholeVlmGrowTest(unittest.TestCase):
    def test_the_language_stage_grows_the_tower_and_trains_the_decoder_with_it(self):
        root = tempfile.mkdtemp()
        for part in ("vlm", "generator"):
            shutil.copytree(os.path.join(MODEL, part), os.path.join(root, part))
        _, before = shipped()
        log = T.Log(os.path.join(root, "training_log.json"))
        T.stage_vlm(root, log, minutes=0.05, batch=4, lr=1e-4, language=True, anchor=20.0, two_weight=3.0,
                    vision_depth=3, data_seed=5)
        after = T.Qwen2VL.from_pretrained(os.path.join(root, "vlm"))
        self.assertEqual((len(after.visual.blocks), after.cfg.vision.depth), (3, 3))
        entry = json.load(open(log.path))["vlm_language"]
        self.assertEqual((entry["grow_vision"], entry["vision_depth"], entry["data_seed"]), (1, 3, 5))
        self.assertGreater(entry["steps"], 0)
        # the whole VLM learnt: the decoder moved, and so did the new block's zeroed projection
        self.assertFalse(torch.equal(after.model.layers[0].mlp.down_proj.weight,
                                     before.model.layers[0].mlp.down_proj.weight))
        self.assertGreater(float(after.visual.blocks[2].mlp.fc2.weight.abs().sum()), 0.0)


class VocabStageTest(unittest.TestCase):
    def test_question_words_get_tokens_every_caption_answer_and_old_logit_stays_and_only_new_rows_train(self):
        root = tempfile.mkdtemp()
        shutil.copytree(os.path.join(MODEL, "vlm"), os.path.join(root, "vlm"))
        old_tok, old = shipped()
        log = T.Log(os.path.join(root, "training_log.json"))
        added = T.stage_vocab(root, log)
        tok = T.Tokenizer(os.path.join(root, "vlm", "tokenizer.json"))
        vlm = T.Qwen2VL.from_pretrained(os.path.join(root, "vlm"))
        self.assertIn("\u0120color", added)
        self.assertEqual(tok.encode("which color is it?"), tok.encode("which") + [tok.vocab["\u0120color"]] +
                         tok.encode(" is it?"))
        self.assertLess(len(tok.encode("Which color do you see?")), len(old_tok.encode("Which color do you see?")))
        # captions (the generators' prompts), answers and the chat text tokenize exactly as before
        for seed, i in ((5, 0), (5, 1), (6, 7), (8, 3)):
            ex = T.shapes_world._scene(seed, i)
            for t in [ex["caption"], T.shapes_language.caption_variant(ex, seed, i), *[a for _, a in ex["qa"]],
                      T.chat.render([{"role": "user", "content": [{"type": "text", "text": "x"}]}])]:
                self.assertEqual(tok.encode(t), old_tok.encode(t), t)
        n_old, n = old.cfg.text.vocab_size, vlm.cfg.text.vocab_size
        self.assertEqual(n, max(tok.vocab.values()) + 1)
        self.assertEqual(json.load(open(log.path))["vocab"]["vocab_size"], n)
        e_old, e = old.model.embed_tokens.weight, vlm.model.embed_tokens.weight
        self.assertTrue(torch.equal(e[:n_old], e_old))
        ids = [old_tok.vocab[p] for p in old_tok._bpe("\u0120color")]
        self.assertTrue(torch.allclose(e[tok.vocab["\u0120color"]], e_old[ids].mean(0)))
        # a prompt of old tokens gets the old logits (and more columns)
        x = torch.tensor(old_tok.encode("a red circle to the left of a blue square"))
        want, got = (m.prefill(x)[0] for m in (old, vlm))
        self.assertTrue(torch.allclose(got[..., :n_old], want, atol=1e-5))
        self.assertEqual(T.stage_vocab(root, log), [])   # a rerun adds nothing
        # the VLM stage with rows_from learns the new rows and nothing else (the stage asserts the rest too)
        T.stage_vlm(root, log, minutes=0.05, batch=4, lr=1e-3, language=True, two_weight=3.0, rows_from=n_old, data_seed=9)
        trained = T.Qwen2VL.from_pretrained(os.path.join(root, "vlm"))
        self.assertEqual(json.load(open(log.path))["vlm_language"]["token_rows_from"], n_old)
        e2 = trained.model.embed_tokens.weight
        self.assertTrue(torch.equal(e2[:n_old], e_old))
        self.assertFalse(torch.equal(e2[n_old:], e[n_old:]))
        for k, v in trained.state_dict().items():
            if k != "model.embed_tokens.weight":
                self.assertTrue(torch.equal(v, vlm.state_dict()[k]), k)


    def test_only_the_named_words_grow_and_a_word_the_questions_do_not_own_is_refused(self):
        root = tempfile.mkdtemp()
        shutil.copytree(os.path.join(MODEL, "vlm"), os.path.join(root, "vlm"))
        old_tok, old = shipped()
        log = T.Log(os.path.join(root, "training_log.json"))
        self.assertEqual(T.stage_vocab(root, log, [" color"]), ["\u0120color"])
        tok = T.Tokenizer(os.path.join(root, "vlm", "tokenizer.json"))
        self.assertEqual(len(tok.encode(" color")), 1)
        self.assertEqual(tok.encode("Which kind"), old_tok.encode("Which kind"))   # question-only words not named
        self.assertEqual(json.load(open(log.path))["vocab"]["words"], [" color"])
        with self.assertRaises(ValueError):
            T.stage_vocab(root, log, [" circle"])   # a caption word: growing it would change the streams' prompts
        # the command line refuses it before touching the model (exit 2), and names it
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "shapes", "train_shapes.py"), "--out", root,
                            "--stages", "vocab", "--vocab-words", " circle, thingz"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2, r.stderr[-300:])
        self.assertIn("' circle'", r.stderr)
        self.assertEqual(T.Tokenizer(os.path.join(root, "vlm", "tokenizer.json")).vocab, tok.vocab)


class SaveVlmTest(unittest.TestCase):
    def test_swaps_in_the_new_vlm_keeps_the_tokenizer_and_leaves_nothing_beside(self):
        _, vlm = shipped()
        root = tempfile.mkdtemp()
        vdir = os.path.join(root, "vlm")
        os.makedirs(vdir)
        with open(os.path.join(vdir, "tokenizer.json"), "w") as f:
            f.write("{}")
        T.save_vlm_atomically(vlm, vdir)
        with torch.no_grad():
            vlm.model.layers[0].mlp.down_proj.weight.mul_(2.0)
        T.save_vlm_atomically(vlm, vdir)
        self.assertEqual(sorted(os.listdir(root)), ["vlm"])
        self.assertEqual(sorted(os.listdir(vdir)),
                         ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"])
        back = T.Qwen2VL.from_pretrained(vdir)
        self.assertTrue(torch.equal(back.model.layers[0].mlp.down_proj.weight, vlm.model.layers[0].mlp.down_proj.weight))


class RecordingLog(T.Log):
    """A Log that also keeps every write, to see the checkpoints' entries a finished stage overwrites."""
    def __init__(self, path):
        super().__init__(path)
        self.writes = []

    def stage(self, name, in_progress=False, **info):
        super().stage(name, in_progress, **info)
        self.writes.append((name, json.loads(json.dumps(self.data[name]))))


class StageLogTest(unittest.TestCase):
    def test_checkpoints_write_an_in_progress_entry_the_stage_end_completes(self):
        root = tempfile.mkdtemp()
        gen_dir = os.path.join(root, "generator")
        shutil.copytree(os.path.join(MODEL, "generator"), gen_dir)
        log = RecordingLog(os.path.join(root, "training_log.json"))
        T.stage_gen(MODEL, gen_dir, log, minutes=0.3, groups=4, name="gen", lr=1e-5, resume=True, patch=2, batch=4,
                    pool=64, language=True, variants=1, checkpoint_minutes=0.02, pool_seed=3)
        names = {n for n, _ in log.writes}
        self.assertEqual(names, {"gen_language"})
        partial = [e for _, e in log.writes if e.get("in_progress")]
        self.assertGreater(len(partial), 0, "no checkpoint wrote the log")
        self.assertNotIn("in_progress", log.writes[-1][1])
        final = json.load(open(log.path))["gen_language"]
        self.assertNotIn("in_progress", final)
        self.assertGreaterEqual(final["steps"], partial[-1]["steps"])
        self.assertEqual(final["pool_seed"], 3)
        self.assertGreater(partial[0]["process_cpu_seconds"], 0)
        # a rerun after a stop keeps the stopped run's entry and writes its own beside it
        self.assertEqual(log.next_name("gen_language"), "gen_language_2")


class UsageErrorTest(unittest.TestCase):
    def test_bad_options_exit_2_before_any_training(self):
        out = tempfile.mkdtemp()
        for bad in (["--workers", "-1"], ["--device", "gpu"], ["--two-object-weight", "0"],
                    ["--checkpoint-minutes", "-1"], ["--pool-seed", "-2"], ["--vlm-seed", "-3"], ["--anchor-prompts", "1"], ["--bare-captions"],
                    ["--anchor-prompts", "-1", "--language"], ["--vision-depth", "4"],
                    ["--vision-depth", "-1", "--stages", "vlm_vision"], ["--vision-depth", "4", "--stages", "vlm"],
                    ["--token-rows-from", "409", "--stages", "vlm"], ["--token-rows-from", "-1"],
                    ["--token-rows-from", "409", "--stages", "vlm", "--language", "--anchor-prompts", "20"],
                    ["--vocab-words", " things"], ["--vocab-words", ",", "--stages", "vocab"]) + \
                ((["--device", "cuda"],) if not torch.cuda.is_available() else ()):
            r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "shapes", "train_shapes.py"), "--out",
                                os.path.join(out, "m"), "--stages", "world", *bad], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 2, f"{bad}: {r.stderr[-300:]}")
            self.assertIn("error:", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "m")), f"{bad} wrote the model directory")


if __name__ == "__main__":
    unittest.main()
