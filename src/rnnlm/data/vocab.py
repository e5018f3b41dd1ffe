"""Vocab: the ordered list of tokens and its inverse, built from the training split only."""

from __future__ import annotations

import os
from itertools import repeat
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from rnnlm.atomic import write_json
from rnnlm.errors import RnnlmError, SettingError, literal, shown
from rnnlm.reading import read_json

UNK, PAD, BOS = "xxunk", "xxpad", "xxbos"
SPECIALS = (UNK, PAD, BOS)
VOCAB_FORMAT = "rnnlm-vocab"
VOCAB_VERSION = 1
VOCAB_LIMIT = 1 << 30  # bytes of vocab.json


def id_dtype(size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id of a vocab of ``size`` tokens."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise RnnlmError(f"vocab of {size} tokens is too large")


class Vocab:
    """Specials first (``xxunk``, ``xxpad``, ``xxbos``), then tokens by falling count, ties by token."""

    def __init__(self, itos: list[str]):
        if list(itos[: len(SPECIALS)]) != list(SPECIALS):
            raise RnnlmError(f"vocab must start with the special tokens {', '.join(SPECIALS)}")
        if len(set(itos)) != len(itos):
            raise RnnlmError("vocab has repeated tokens")
        self.itos = list(itos)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}
        self.unk_id, self.pad_id, self.bos_id = (self.stoi[s] for s in SPECIALS)

    @classmethod
    def build(
        cls, counts: Mapping[str, int], min_freq: int = 1, max_size: int | None = None
    ) -> "Vocab":
        """Keep tokens seen at least ``min_freq`` times, at most ``max_size`` of them (specials excluded)."""
        kept = sorted(
            ((tok, n) for tok, n in counts.items() if n >= min_freq and tok not in SPECIALS),
            key=lambda item: (-item[1], item[0]),
        )
        if max_size is not None:
            kept = kept[:max_size]
        return cls(list(SPECIALS) + [tok for tok, _ in kept])

    def extended(self, tokens: Iterable[str]) -> "Vocab":
        """This vocab with ``tokens`` it lacks added after its own: every old id stays the same."""
        new = [t for t in dict.fromkeys(tokens) if t not in self.stoi]
        return Vocab(self.itos + new)

    def unknown(self, counts: Mapping[str, int]) -> dict[str, int]:
        """The tokens of ``counts`` this vocab lacks (specials aside), by falling count, ties by token."""
        return dict(sorted(((t, n) for t, n in counts.items() if t not in self.stoi and t not in SPECIALS),
                           key=lambda item: (-item[1], item[0])))

    def check_has_tokens(self, source: str, min_freq: int) -> None:
        """Refuse a vocab of the specials alone: no token of ``source``'s training split was seen
        ``min_freq`` times."""
        if len(self.itos) == len(SPECIALS):
            raise SettingError("min_freq", f"{literal(source)}: no token occurs {{min_freq}} {min_freq} times in the "
                                           "training split")

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    @property
    def dtype(self) -> np.dtype:
        return id_dtype(len(self))

    def encode_tokens(self, tokens: Iterable[str]) -> np.ndarray:
        """Ids of ``tokens``; a token outside the vocab becomes ``xxunk``."""
        return np.fromiter(map(self.stoi.get, tokens, repeat(self.unk_id)), dtype=self.dtype)

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {"format": VOCAB_FORMAT, "version": VOCAB_VERSION, "itos": self.itos})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        path = Path(path)
        obj = read_json(path, VOCAB_LIMIT, "vocab file", missing="no vocab file")
        if not isinstance(obj, dict) or obj.get("format") != VOCAB_FORMAT:
            raise RnnlmError(f"{path}: not an rnnlm vocab file")
        if obj.get("version") != VOCAB_VERSION:
            raise RnnlmError(f"{path}: unknown vocab version {shown(obj.get('version'))}")
        itos = obj.get("itos")
        if not isinstance(itos, list) or not all(isinstance(t, str) and t for t in itos):
            raise RnnlmError(f"{path}: vocab 'itos' must be a list of non-empty strings")
        try:
            return cls(itos)
        except RnnlmError as e:
            raise RnnlmError(f"{path}: {e}") from None
