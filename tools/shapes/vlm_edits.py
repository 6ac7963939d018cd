"""Edits to a saved tiny VLM that leave its answers as they were until training moves them: a deeper vision
tower (grow_vision_tower), and tokens of their own for the words only the language's questions use
(grow_question_vocab). Imported by train_shapes.py, which puts tools/reference (latte_ref) on sys.path first."""
import collections
import json

import torch

from latte_ref import chat, shapes_language, shapes_world
from latte_ref.vision import VisionBlock


def grow_vision_tower(vlm, depth):
    """Appends blocks to the vision tower until it has `depth`, each the identity at first: a block adds
    attn.proj(...) and mlp.fc2(...) to its input, and both start at zero, so the tower's output (and every
    answer) is unchanged until training moves them. The decoder never sees the tower's depth, only its merged
    output. Returns how many blocks it added."""
    n = depth - len(vlm.visual.blocks)
    if n < 0:
        raise ValueError(f"the vision tower has {len(vlm.visual.blocks)} blocks, more than {depth}")
    for _ in range(n):
        block = VisionBlock(vlm.cfg.vision)
        with torch.no_grad():
            for lin in (block.attn.proj, block.mlp.fc2):
                lin.weight.zero_()
                lin.bias.zero_()
        vlm.visual.blocks.append(block)
    vlm.cfg.vision.depth += n
    return n


def question_only_words(tok, n=3000):
    """The language's question words that no caption, answer or chat text uses, as the tokenizer's byte-level
    pieces (" things", "Which"), most frequent first, and the set of pieces those other texts use. The
    tokenizer was trained on the template text, so such words are spelt a letter at a time."""
    def pieces(text):
        return ["".join(tok.b2u[b] for b in p.encode("utf-8")) for p in tok.split_re.findall(text)]

    questions, kept = collections.Counter(), set()
    kept.update(p for t in tok.special_re.split(chat.render([{"role": "user", "content": [{"type": "text", "text": "x"}]}]))
                for p in pieces(t))
    for seed in (11, 12):
        for i in range(n):
            ex = shapes_world._scene(seed, i)
            qa = ex["qa"] + shapes_language.qa_variants(ex, seed, i) + shapes_language.blank_qa(seed, i)
            captions = [ex["caption"], shapes_language.caption_variant(ex, seed, i),
                        shapes_language.caption_variant(ex, seed + 7, i, "heldout")]
            for t in captions + [shapes_language.bare_prompt(o) for o in ex["objects"]] + [a for _, a in qa]:
                for form in (t, t[:1].upper() + t[1:], t + "."):
                    kept.update(pieces(form))
            for q, _ in qa:
                questions.update(pieces(q))
    return [p for p, _ in questions.most_common() if p not in kept], kept


def vocab_pieces(tok, words):
    """Words as written (" things": a space before a word that follows another) -> the tokenizer's byte-level pieces."""
    return None if words is None else ["".join(tok.b2u[b] for b in w.encode("utf-8")) for w in words]


def grow_question_vocab(tok, path, vlm, only=None):
    """Gives each question-only word (question_only_words) a token of its own: BPE merges appended after the
    trained ones, each joining two tokens that sit side by side in no caption, answer or chat piece, so none
    of those tokenize differently (asserted) and the generators' prompts stay exactly as they were. The VLM's
    tied embedding grows a row per new token, the mean of the rows of the tokens it joins. Returns the grown
    tokenizer.json (read from path), the grown vlm, the words and the merges; None when there is nothing to add.
    only: grow just these of the question-only words, as byte-level pieces ("Ġthings" for " things")."""
    words, kept = question_only_words(tok)
    if only is not None:
        only = set(only)
        if only - set(words):
            raise ValueError(f"not question-only words: {sorted(only - set(words))}")
        words = [w for w in words if w in only]
    before = {p: tok._bpe(p) for p in kept}
    apart = {(a, b) for parts in before.values() for a, b in zip(parts, parts[1:])}
    ranks = dict(tok.ranks)
    def bpe(word):   # Tokenizer._bpe with the merges so far
        parts = list(word)
        while len(parts) > 1:
            rank, i = min((ranks.get(pair, 1 << 60), i) for i, pair in enumerate(zip(parts, parts[1:])))
            if rank == 1 << 60:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return parts

    merges, added = [], []
    for w in words:
        parts, chain = bpe(w), []
        while len(parts) > 1:
            i = next((i for i in range(len(parts) - 1) if (parts[i], parts[i + 1]) not in apart), None)
            if i is None:
                break
            chain.append((parts[i], parts[i + 1]))
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) > 1 or not chain:
            continue
        new = [m for m in dict.fromkeys(chain) if m not in ranks]
        for m in new:
            ranks[m] = len(ranks)
        if all(len(bpe(x)) == 1 for x in added + [w]):   # its merges leave the earlier words whole
            merges += new
            added.append(w)
        else:
            for m in new:
                del ranks[m]
    if not merges:
        return None
    with open(path, encoding="utf-8") as f:
        tj = json.load(f)
    vocab = tj["model"]["vocab"]
    first = max(list(vocab.values()) + [t["id"] for t in tj["added_tokens"]]) + 1
    new_ids = {}
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = new_ids[a + b] = first + len(new_ids)
    as_text = not tj["model"]["merges"] or isinstance(tj["model"]["merges"][0], str)
    tj["model"]["merges"] += [f"{a} {b}" if as_text else [a, b] for a, b in merges]
    emb = vlm.model.embed_tokens.weight.detach()
    rows = [emb[[tok.vocab[p] for p in tok._bpe(t)]].mean(0) for t in new_ids]
    grown = torch.cat([emb] + ([torch.stack(rows)] if rows else []))
    vlm.model.embed_tokens = torch.nn.Embedding(*grown.shape)
    with torch.no_grad():
        vlm.model.embed_tokens.weight.copy_(grown)
    vlm.cfg.text.vocab_size = grown.shape[0]
    # the merges as appended rank after the trained ones, as bpe has used them
    assert all(bpe(p) == parts for p, parts in before.items()), "a caption, answer or chat piece changed"
    assert all(len(bpe(w)) == 1 for w in added), "a new word is not one token"
    return tj, vlm, added, merges
