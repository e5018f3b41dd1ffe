"""Write text with an rnnlm model exported to ONNX, with numpy and onnxruntime alone (no torch,
no rnnlm): the reference generator of ``rnnlm export RUN --onnx OUT``.

    pip install numpy onnxruntime
    python onnx_generate.py OUT --prime "the cat " -n 200 --greedy
    python onnx_generate.py OUT --prime "the cat " --temperature 0.8 --top-k 20 --seed 1

It writes what ``rnnlm generate RUN`` writes with the same options: the prime is read once by
``prompt.onnx``, then each token costs one call of ``step.onnx``; the tokenizer (character, word
or byte-level BPE) comes from ``tokenizer.json``; tokens are drawn as rnnlm draws them (the same
random numbers for the same seed, the same inverse-CDF draw), so greedy text is the same and a
seeded sample is the same but where float rounding tips a draw at the edge of a token's share.
"""

from __future__ import annotations

import argparse
import codecs
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import onnxruntime

WORD = re.compile(r"\w+|[^\w\s]")  # the word level's tokens (rnnlm.data.tokenizers.WORD_RE)


def category_class(prefix: str) -> str:
    """A regex character class body of every code point whose Unicode category starts with
    ``prefix`` (``L``: letters, ``N``: numbers): Python's ``re`` has no ``\\p{L}``."""
    ranges, start = [], None
    for cp in range(0x110001):
        inside = cp < 0x110000 and unicodedata.category(chr(cp)).startswith(prefix)
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(cp - 1)) if cp - 1 > start else ""))
            start = None
    return "".join(ranges)


def pre_tokenizer(spaces: str) -> re.Pattern:
    """GPT-2's byte-level pre-tokenizer regex, as Hugging Face tokenizers runs it:
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    letters, numbers, s = category_class("L"), category_class("N"), re.escape(spaces)
    return re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{s}{letters}{numbers}]+"
                      rf"|[{s}]+(?![^{s}])|[{s}]+")


class Tokenizer:
    """Text to ids and ids back to text, for the three levels of ``tokenizer.json``."""

    def __init__(self, spec: dict):
        self.spec, self.level, self.itos = spec, spec["level"], spec["itos"]
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        if self.level == "bpe":
            bpe = spec["bpe"]
            self.byte_chars = bpe["byte_chars"]
            self.char_bytes = {c: b for b, c in enumerate(self.byte_chars)}
            self.ranks = {tuple(pair): rank for rank, pair in enumerate(bpe["merges"])}
            self.words = pre_tokenizer(spec["spaces"])
        self.token_bytes = [self.bytes_of(token) for token in self.itos]

    def bytes_of(self, token: str) -> bytes:
        if self.level != "bpe" or token in self.spec["specials"]:
            return token.encode("utf-8")
        return bytes(self.char_bytes[c] for c in token)

    def encode(self, text: str) -> list[int]:
        text = text.lower() if self.spec["lower"] else text
        unk = self.spec["unk_id"]
        if self.level == "char":
            return [self.stoi.get(c, unk) for c in text]
        if self.level == "word":
            return [self.stoi.get(w, unk) for w in WORD.findall(text)]
        ids = []
        for word in self.words.findall(text):
            symbols = "".join(self.byte_chars[b] for b in word.encode("utf-8"))
            ids.extend(self.stoi[s] for s in self.merge(symbols))
        return ids

    def merge(self, word: str) -> list[str]:
        """Byte-level BPE of one pre-token: the pair of lowest rank merged, everywhere, until none is left."""
        if self.spec["bpe"]["ignore_merges"] and word in self.stoi:
            return [word]
        symbols = list(word)
        while len(symbols) > 1:
            pairs = {(a, b) for a, b in zip(symbols, symbols[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def prompt_ids(self, prime: str) -> list[int]:
        """What the model reads first: the prime's ids (after xxbos at word level); an empty
        prime at the other levels reads ``empty_prompt``."""
        ids = self.encode(prime) if prime else []
        if self.spec["adds_bos"]:
            return [self.spec["bos_id"]] + ids
        return ids or list(self.spec["empty_prompt"])

    def decoder(self) -> "Decoder":
        return Decoder(self)


class Decoder:
    """The text each new token adds, as rnnlm's stream decoders write it."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer, self.started = tokenizer, False
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, token_id: int) -> str:
        t = self.tokenizer
        token, specials = t.itos[token_id], t.spec["specials"]
        if t.level == "bpe":
            return self.utf8.decode(t.token_bytes[token_id])
        if t.level == "char":
            return "\ufffd" if token_id == t.spec["unk_id"] else "" if token in specials else token
        if token in specials and token_id != t.spec["unk_id"]:
            return ""
        text, self.started = (" " + token if self.started else token), True
        return text

    def flush(self) -> str:
        return self.utf8.decode(b"", final=True)


def draw(logits: np.ndarray, temperature: float, top_k: int | None, greedy: bool, u: float) -> int:
    """The next token from ``logits`` (V,), banned tokens already -inf, as rnnlm draws it: the
    most likely, or the first whose cumulative probability (in vocab order) passes ``u``."""
    if greedy:
        return int(np.argmax(logits))
    scaled = ((logits - logits.max()) / np.float32(temperature)).astype(np.float32)
    if top_k is not None and top_k < len(scaled):
        keep = np.argsort(-scaled, kind="stable")[:top_k]
        scaled = np.where(np.isin(np.arange(len(scaled)), keep), scaled, np.float32(-np.inf))
    p = np.exp(scaled - scaled.max())
    cdf = np.cumsum((p / p.sum()).astype(np.float64)).astype(np.float32)
    total = cdf[-1]
    target = min(np.float32(u) * total, np.nextafter(total, np.float32(0)))
    return int(np.searchsorted(cdf, target, side="right"))


class Model:
    """The two graphs of an export folder and its tokenizer."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self.spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")))
        self.step_graph = onnxruntime.InferenceSession(str(folder / "step.onnx"), providers=["CPUExecutionProvider"])
        self.prompt_graph = onnxruntime.InferenceSession(str(folder / "prompt.onnx"),
                                                         providers=["CPUExecutionProvider"])
        self.state_names = ["h", "c"] if self.spec["cell"] == "lstm" else ["h"]
        self.ban = np.zeros(self.spec["vocab_size"], dtype=np.float32)
        self.ban[self.tokenizer.spec["banned"]] = -np.inf

    def run(self, graph, ids: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        logits, *state = graph.run(None, {"ids": ids, **dict(zip(self.state_names, state))})
        return logits[0], state  # (V,), one stream

    def generate(self, prime: str = "", n: int = 200, *, greedy: bool = False, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None):
        """The text after ``prime``, piece by piece as tokens are drawn (at most ``n`` of them)."""
        rng = random.Random(random.SystemRandom().getrandbits(63) if seed is None else seed)
        ids = self.tokenizer.prompt_ids(prime)
        decoder = self.tokenizer.decoder()
        for token in ids:
            decoder.feed(token)
        zeros = np.zeros((self.spec["layers"], 1, self.spec["hidden"]), dtype=np.float32)
        logits, state = self.run(self.prompt_graph, np.array([ids], dtype=np.int64), [zeros] * len(self.state_names))
        for written in range(1, n + 1):
            token = draw(logits + self.ban, temperature, top_k, greedy, rng.random())
            if token == self.tokenizer.spec["end_id"]:
                return
            yield decoder.feed(token)
            if written == n:
                yield decoder.flush()
                return
            logits, state = self.run(self.step_graph, np.array([token], dtype=np.int64), state)


def main() -> None:
    p = argparse.ArgumentParser(description="Write text with an rnnlm ONNX export (numpy and onnxruntime only).")
    p.add_argument("folder", help="the folder rnnlm export --onnx wrote")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("-n", type=int, default=200, help="tokens to generate (at most)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--temperature", type=float, default=1.0, help="below 1: safer text, above 1: wilder")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--seed", type=int, default=None, help="same seed, same text")
    args = p.parse_args()
    if args.temperature <= 0 or (args.top_k is not None and args.top_k < 1) or args.n < 0:
        p.error("--temperature must be > 0, --top-k >= 1 and -n >= 0")
    model = Model(args.folder)
    sys.stdout.write(args.prime)
    for text in model.generate(args.prime, args.n, greedy=args.greedy, temperature=args.temperature,
                               top_k=args.top_k, seed=args.seed):
        sys.stdout.write(text)
        sys.stdout.flush()
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
