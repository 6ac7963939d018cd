"""The shapes world's language: many equivalent captions and questions for each scene (docs/shapes-world.md,
"Language"). lib/shapes/language.ts is the TypeScript twin; both give the same text for the same
(seed, i, split), byte for byte (test/fixtures/shapes_language.json holds the evidence).

    caption_variant(ex, seed, i, split)   one varied caption of example i of stream seed
    qa_variants(ex, seed, i, split)       the example's questions in varied wording, same answers, plus
                                          relation questions for two-shape scenes
    blank_qa(seed, i, split)              questions about the blank (white) image and their answers
    bare_prompt(o)                        "a {colour} {shape}" ("an" before a vowel)

split is "train" (what training sees) or "heldout": every sentence is built from a frame, and the held-out
frames (H_* below) are never used for training; each is made of words the training frames use.
The example's own rng is untouched: the language draws from a second mulberry32 state per example.
"""
import re

from .shapes_world import Mulberry32, stream_state

LANG_SALT = 0x5EED1A6E

SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
PLACE_WORDS = {
    "left": ("on the left", "at the left", "on the left side", "on the left-hand side", "to the left"),
    "right": ("on the right", "at the right", "on the right side", "on the right-hand side", "to the right"),
    "top": ("on the top", "at the top", "in the upper part", "near the top", "above the middle"),
    "bottom": ("on the bottom", "at the bottom", "in the lower part", "near the bottom", "below the middle"),
    "center": ("in the center", "in the centre", "in the middle", "at the center", "in the centre of the image"),
}
RELATION_WORDS = {
    "to the left of": ("to the left of", "left of", "on the left of"),
    "to the right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
CONVERSE = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above"}

def expand(patterns, exclude=()):
    """Every sentence of the patterns, in order: "[a|b]" is a choice (the leftmost varies slowest; "[|x]"
    makes x optional), minus the excluded ones (the held-out frames), each once."""
    out = []
    for p in patterns:
        m = re.search(r"\[([^\]]*)\]", p)
        if m is None:
            sentences = [p]
        else:
            sentences = expand([p[:m.start()] + alt + p[m.end():] for alt in m.group(1).split("|")])
        out += [t for t in sentences if t not in exclude and t not in out]
    return tuple(out)


# frames: {np} a noun phrase, {place} a place phrase, {a}/{b} the two noun phrases, {rel} a relation phrase.
# The train frames are a small grammar; a held-out frame (H_*) is one of its combinations left out, or a
# word order it never uses, so the held-out split measures whether the parts were learnt, not the sentences.
H_ONE_FRAMES = ("{place} there is {np}", "{np} is {place}")
ONE_FRAMES = expand(("{np} {place}", "[|in the image |in this picture ]there is {np} {place}", "{place} is {np}",
                     "[|in the image |in this picture ]you can see {np} {place}",
                     "{place} you can see {np}", "{np} [sits|located|which is|that is] {place}"), H_ONE_FRAMES)
BARE_FRAMES = ("{np}", "there is {np}", "you can see {np}")
H_TWO_FRAMES = ("{a} is {rel} {b}", "{rel} {b} there is {a}")
TWO_FRAMES = expand(("{a} {rel} {b}", "[|in the image |in this picture ]there is {a} {rel} {b}", "{rel} {b} is {a}",
                     "{b} {conv} {a}", "[|in the image |in this picture ]you can see {a} {rel} {b}", "{rel} {b} you can see {a}", "{a} [sits|located|which is|that is] {rel} {b}",
                     "there is {b} {conv} {a}"), H_TWO_FRAMES)

# question families: (train forms, held-out forms); {s} shape, {c} colour, {np} "a red circle", {x}/{y} objects
_HELD = {
    "colour": ("which color is the {s}?", "what is the color of the {s}?"),
    "shape": ("what kind of shape is the {c} thing?", "which shape is the {c} object?"),
    "count": ("how many objects do you see?", "how many things are there?"),
    "exists": ("do you see {np} in the image?", "can you see {np} in the image?"),
    "where": ("in which part of the image is the {s}?", "where in the image is the {s}?"),
    "leftright": ("is the {x} on the left or on the right of the {y}?",),
    "abovebelow": ("is the {x} under or over the {y}?",),
    "describe": ("describe what you see.", "what is in this picture?"),
}
_TRAIN = {
    "colour": ("[what|which] [colour|color] is the {s}[| in the image| in the picture]?",
               "what is the [colour|color] of the {s}[| in the image]?", "what [colour|color] does the {s} have?",
               "tell me the [colour|color] of the {s}."),
    "shape": ("[what shape|what kind of shape|which shape|what sort of shape] is the {c} [object|thing|one]?",
              "which shape is {c}?", "what is the shape of the {c} [object|thing]?"),
    "count": ("how many [shapes|objects|things] [are there|do you see|can you see|are in the image|are in the picture]?",
              "count the [shapes|objects|things]."),
    "exists": ("[is there|do you see|can you see|can you find] {np}[| in the image| in the picture| in this image| here]?",),
    "where": ("where is the {s}[| located][| in the image| in the picture]?",
              "in [which|what] part[| of the image| of the picture] is the {s}?", "where in the picture is the {s}?",
              "which part of the [image|picture] is the {s} in?"),
    "leftright": ("is the {x} [left|to the left|on the left] or [right|to the right|on the right] of the {y}?",
                  "is the {x} [right|to the right|on the right] or [left|to the left|on the left] of the {y}?"),
    "abovebelow": ("is the {x} [above|over] or [below|under|beneath] the {y}?",
                   "is the {x} [below|under|beneath] or [above|over] the {y}?"),
    "describe": ("describe [the|this] [image|picture].", "what is in [the|this] [image|picture]?",
                 "caption [the|this] [image|picture].", "what [do|can] you see[| in the image| in the picture]?",
                 "tell me what you see."),
}
QUESTIONS = {family: (expand(_TRAIN[family], held), held) for family, held in _HELD.items()}
SPLITS = ("train", "heldout")


class Words:
    """The language's draws for one example: a mulberry32 stream of its own."""

    def __init__(self, seed, i):
        self.rng = Mulberry32(stream_state(seed, i) ^ LANG_SALT)

    def pick(self, options):
        return options[self.rng.int(len(options))]

    def chance(self, n):
        """True one time in n."""
        return self.rng.int(n) == 0

    def article(self, next_word):
        """a (an before a vowel), one or the; the templates' bare "a" stays a training form too."""
        art = self.pick(("a", "a", "one", "the"))
        if art == "a" and next_word[0] in "aeiou" and not self.chance(4):
            return "an"
        return art

    def np(self, o, size):
        words = ([self.pick(SIZE_WORDS[o["size"]])] if size else []) + [o["colour"], o["shape"]]
        return self.article(words[0]) + " " + " ".join(words)

    def surface(self, text, stop):
        """Capital first letter one time in three; the final mark (stop: "." or "?") kept or dropped."""
        body = text[:-1] if text.endswith((".", "?")) else text
        mark = text[len(body):] or stop
        if mark == "." and not self.chance(3):
            mark = ""
        elif mark == "?" and self.chance(4):
            mark = ""
        if self.chance(3):
            body = body[0].upper() + body[1:]
        return body + mark


def _check(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def caption_variant(ex, seed, i, split="train"):
    """A caption of example i of stream seed (its scene ex) in varied wording. Train captions may leave out
    the size and (one shape) the place; held-out ones keep both and use a held-out frame."""
    _check(split)
    w = Words(seed, i)
    held = split == "heldout"
    if ex["kind"] == "one":
        o = ex["objects"][0]
        np_ = w.np(o, size=held or not w.chance(2))
        if not held and w.chance(4):
            return w.surface(w.pick(BARE_FRAMES).format(np=np_), ".")
        frame = w.pick(H_ONE_FRAMES if held else ONE_FRAMES)
        return w.surface(frame.format(np=np_, place=w.pick(PLACE_WORDS[ex["place"]])), ".")
    a, b = ex["objects"]
    sized = w.chance(4)
    frame = w.pick(H_TWO_FRAMES if held else TWO_FRAMES)
    text = frame.format(a=w.np(a, sized), b=w.np(b, sized), rel=w.pick(RELATION_WORDS[ex["relation"]]),
                        conv=w.pick(RELATION_WORDS[CONVERSE[ex["relation"]]]))
    return w.surface(text, ".")


def _ask(w, family, split, **slots):
    forms = QUESTIONS[family][1 if split == "heldout" else 0]
    return w.surface(w.pick(forms).format(**slots), "?")


def qa_variants(ex, seed, i, split="train"):
    """The template questions of ex (in their order) in varied wording with the same answers, then for two
    shapes "left or right" / "above or below" (answer: left, right, above or below)."""
    _check(split)
    w = Words(seed, i)
    out = []
    for q, a in ex["qa"]:
        if q.startswith("what colour is the "):
            out.append((_ask(w, "colour", split, s=q[len("what colour is the "):-1]), a))
        elif q.startswith("what shape is the "):
            out.append((_ask(w, "shape", split, c=q[len("what shape is the "):-len(" object?")]), a))
        elif q.startswith("how many"):
            out.append((_ask(w, "count", split), a))
        elif q.startswith("is there a "):
            colour, shape = q[len("is there a "):-1].split(" ")
            out.append((_ask(w, "exists", split, np=w.article(colour) + f" {colour} {shape}"), a))
        elif q.startswith("where is the "):
            out.append((_ask(w, "where", split, s=q[len("where is the "):-1]), a))
        else:
            out.append((_ask(w, "describe", split), a))
    if ex["kind"] == "two":
        a, b = ex["objects"]
        horizontal = ex["relation"] in ("to the left of", "to the right of")
        x, y = (a, b) if not w.chance(2) else (b, a)
        rel = ex["relation"] if x is a else CONVERSE[ex["relation"]]
        answer = {"to the left of": "left", "to the right of": "right", "above": "above", "below": "below"}[rel]
        fam = "leftright" if horizontal else "abovebelow"
        out.append((_ask(w, fam, split, x=f"{x['colour']} {x['shape']}", y=f"{y['colour']} {y['shape']}"), answer))
    return out


def blank_qa(seed, i, split="train"):
    """Questions about a blank (all-white) image: how many -> zero, describe -> no shapes, is there -> no,
    and what colour / what shape / where -> no shapes."""
    _check(split)
    w = Words(seed, i)
    s, c = ("circle", "square", "triangle")[w.rng.int(3)], ("red", "green", "blue", "yellow", "purple", "orange")[w.rng.int(6)]
    return [(_ask(w, "count", split), "zero"), (_ask(w, "describe", split), "no shapes"),
            (_ask(w, "exists", split, np=w.article(c) + f" {c} {s}"), "no"),
            (_ask(w, "colour", split, s=s), "no shapes"), (_ask(w, "shape", split, c=c), "no shapes"),
            (_ask(w, "where", split, s=s), "no shapes")]


def bare_prompt(o):
    """The bare prompt of an object: "a {colour} {shape}" ("an" before a vowel)."""
    return ("an " if o["colour"][0] in "aeiou" else "a ") + f"{o['colour']} {o['shape']}"


def vocabulary(n=4000):
    """Every word of the world's training text, sorted: the template captions and questions, their answers
    and the train wording (n examples of a stream is enough to draw every option many times)."""
    import re
    from .shapes_world import _scene
    words = set()
    for i in range(n):
        ex = _scene(11, i)
        texts = [ex["caption"], caption_variant(ex, 11, i)] + [t for qa in ex["qa"] + qa_variants(ex, 11, i) + blank_qa(11, i)
                                                                 for t in qa]
        for t in texts:
            words.update(w for w in re.split(r"[^a-z0-9'-]+", t.lower()) if w)
    return sorted(words)
