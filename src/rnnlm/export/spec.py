"""What a runtime outside Python needs to read a prime and write text like ``rnnlm generate``:
the tokenizer and vocab as plain JSON (no pickle, no Hugging Face library), the rules of a draw
(which tokens are never drawn, which one ends a text) and the model's shape.

    {"format": "rnnlm-tokenizer", "level": "char" | "word" | "bpe", "lower": false,
     "itos": [...], "unk_id": 0, "pad_id": 1, "bos_id": 2, "adds_bos": false,
     "banned": [0, 1, 2], "end_id": null, "empty_prompt": [5], "spaces": "\\t\\n ...",
     "bpe": {"byte_chars": "...256 characters...", "merges": [["Ġ", "t"], ...], "ignore_merges": false}}

``spaces`` are the characters the level's splitting treats as whitespace (Python's ``str.isspace``
at word level, the BPE pre-tokenizer's at BPE level), written out so that a JavaScript regex
sees the same ones. ``empty_prompt`` is what an empty prime reads (``encode_prompt``'s rule).
At BPE level ``itos`` holds the byte-level spellings (``Ġthe``): ``byte_chars[b]`` stands for byte
``b``; ``merges`` are the tokenizer's, in rank order; with ``ignore_merges`` a word that is a token is
that token whole.
"""

from __future__ import annotations

import json

from rnnlm.data.bpe import BYTE_CHARS, SPACE_CHARS, BpeTokenizer
from rnnlm.data.tokenizers import Tokenizer
from rnnlm.data.vocab import SPECIALS, Vocab
from rnnlm.generation.prompt import encode_prompt
from rnnlm.models.recurrent import parameter_count
from rnnlm.runfolder import Run

TOKENIZER_FORMAT = "rnnlm-tokenizer"
MODEL_FORMAT = "rnnlm-onnx"
SPEC_VERSION = 1
UNICODE_END = 0x110000


def python_spaces() -> str:
    """Every character ``str.isspace`` (and so the ``\\s`` of the word regex) takes as whitespace."""
    return "".join(c for c in map(chr, range(UNICODE_END)) if c.isspace())


def bpe_merges(model: dict) -> list[list[str]]:
    """The merges of a tokenizer's BPE model (its JSON), in rank order, each as its two tokens."""
    merges = model["merges"]
    return [m.split(" ") if isinstance(m, str) else list(m) for m in merges]


def tokenizer_spec(tokenizer: Tokenizer, vocab: Vocab) -> dict:
    """The tokenizer, vocab and draw rules of a run as JSON (see the module's docstring)."""
    banned = [vocab.unk_id, vocab.pad_id] + ([] if tokenizer.adds_bos else [vocab.bos_id])
    empty, _ = encode_prompt("", tokenizer, vocab)
    spec = {
        "format": TOKENIZER_FORMAT, "version": SPEC_VERSION,
        "level": tokenizer.level, "lower": bool(tokenizer.lower), "itos": list(vocab.itos),
        "unk_id": vocab.unk_id, "pad_id": vocab.pad_id, "bos_id": vocab.bos_id, "specials": list(SPECIALS),
        "adds_bos": tokenizer.adds_bos, "banned": banned,
        "end_id": vocab.bos_id if tokenizer.adds_bos else None,
        "empty_prompt": [int(i) for i in empty],
    }
    if tokenizer.level == "word":
        spec["spaces"] = python_spaces()
    if isinstance(tokenizer, BpeTokenizer):
        spec["spaces"] = "".join(sorted(SPACE_CHARS))
        model = json.loads(tokenizer.to_json())["model"]
        spec["bpe"] = {"byte_chars": "".join(BYTE_CHARS[b] for b in range(256)), "merges": bpe_merges(model),
                       "ignore_merges": bool(model.get("ignore_merges"))}
    return spec


def model_spec(run: Run) -> dict:
    """The model's shape: what a runtime needs to make its first state."""
    m = run.config.model
    return {"format": MODEL_FORMAT, "version": SPEC_VERSION, "name": run.name, "cell": m.cell, "layers": m.layers,
            "emb": m.emb, "hidden": m.hidden, "vocab_size": len(run.vocab),
            "parameters": parameter_count(len(run.vocab), m)}
