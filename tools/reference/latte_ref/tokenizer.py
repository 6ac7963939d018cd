"""A small reader for Hugging Face byte-level BPE tokenizer.json files (Qwen2's kind), stdlib only.

Debian has no python3-tokenizers. This covers what Qwen2/Qwen2-VL and the shapes-world tokenizer use:
added (special) tokens matched literally first, NFC normalisation, a Split pre-tokenizer regex, GPT-2
byte-to-unicode mapping, BPE merges by rank. The Split regex uses \\p{L}/\\p{N}: with the `regex` module
it is used as is; otherwise it is translated for `re` (exact for ASCII and common letters, approximate
for rare Unicode number categories). hf_parity.py checks encode() against `tokenizers` on sample texts.
"""
import json
import re
import unicodedata

try:
    import regex as _re_mod
    _HAS_REGEX = True
except ImportError:  # pragma: no cover - depends on the machine
    _re_mod, _HAS_REGEX = re, False

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _translate(pattern):
    """\\p{L}/\\p{N} -> Python `re` equivalents ([\\W_] = neither letter nor number)."""
    for a, b in ((r"[^\r\n\p{L}\p{N}]", r"(?:(?![\r\n])[\W_])"), (r"[^\s\p{L}\p{N}]", r"(?:(?!\s)[\W_])"),
                 (r"\p{L}", r"(?:(?![\d_])\w)"), (r"\p{N}", r"\d")):
        pattern = pattern.replace(a, b)
    return pattern


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Tokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        model = tj["model"]
        self.vocab = model["vocab"]
        self.id_to_token = {v: k for k, v in self.vocab.items()}
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.added = {t["content"]: t["id"] for t in tj.get("added_tokens", [])}
        for tok, i in self.added.items():
            self.id_to_token[i] = tok
        pattern = QWEN2_PATTERN
        for pt in _walk(tj.get("pre_tokenizer")):
            if pt.get("type") == "Split":
                pattern = pt["pattern"].get("Regex", re.escape(pt["pattern"].get("String", "")))
        self.split_re = _re_mod.compile(pattern if _HAS_REGEX else _translate(pattern))
        self.nfc = any(n.get("type") == "NFC" for n in _walk(tj.get("normalizer")))
        self.b2u = bytes_to_unicode()
        self.u2b = {v: k for k, v in self.b2u.items()}
        specials = sorted(self.added, key=len, reverse=True)
        self.special_re = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self._cache = {}

    def token_id(self, token):
        return self.added.get(token, self.vocab.get(token))

    def _bpe(self, word):
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 60), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 60:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        self._cache[word] = parts
        return parts

    def encode(self, text):
        ids = []
        chunks = self.special_re.split(text) if self.special_re else [text]
        for chunk in chunks:
            if not chunk:
                continue
            if chunk in self.added:
                ids.append(self.added[chunk])
                continue
            if self.nfc:
                chunk = unicodedata.normalize("NFC", chunk)
            for piece in self.split_re.findall(chunk):
                mapped = "".join(self.b2u[b] for b in piece.encode("utf-8"))
                ids.extend(self.vocab[p] for p in self._bpe(mapped))
        return ids

    def decode(self, ids, skip_special=False):
        out, buf = [], []
        for i in ids:
            tok = self.id_to_token[int(i)]
            if tok in self.added:
                out.append(bytes(buf).decode("utf-8", "replace"))
                buf = []
                if not skip_special:
                    out.append(tok)
            else:
                buf.extend(self.u2b[c] for c in tok)
        out.append(bytes(buf).decode("utf-8", "replace"))
        return "".join(out)


def _walk(node):
    """Yield a (possibly Sequence-nested) normalizer / pre-tokenizer node and its children."""
    if not node:
        return
    yield node
    for child in node.get("pretokenizers", []) + node.get("normalizers", []):
        yield from _walk(child)
