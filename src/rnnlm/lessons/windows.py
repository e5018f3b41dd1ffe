"""The datasets of the lessons, before stateful streams: windows of tokens and the one-hot toy.

* raw characters: every distinct character of the text, sorted, after a padding character
  ``"\\0"`` at index 0 (the first Nietzsche notebook's vocab);
* windows: ``n`` tokens predict the next one, starting every ``step`` tokens (``step=n``:
  the three-character model's non-overlapping triples; ``step=1``: overlapping windows);
* sequences: non-overlapping windows of ``n`` tokens whose targets are the same window shifted
  by one token (the multi-output model);
* a random validation set: 20% of the windows, chosen at random;
* :class:`WindowBatches`: mini-batches of windows, shuffled every pass for training;
* :class:`LastTarget`: stream batches that keep only the last target of each row (human
  numbers' Model0 and Model1 predict the fourth word from three);
* :func:`hihell`: "hihell" in one-hot rows, "ihello" as the labels.

Stateful streams (the lower-cased text cut into ``bs`` contiguous streams) are
:class:`rnnlm.data.batching.StreamBatches`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from rnnlm.errors import RnnlmError

PAD_CHAR = "\0"


@dataclass
class RawChars:
    """Character ids of a whole text; ``chars[0]`` is the padding character."""

    ids: np.ndarray
    chars: list[str]

    def encode(self, text: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise RnnlmError(f"characters not in the text: {''.join(unknown)!r}")
        return [index[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def raw_chars(text: str) -> RawChars:
    chars = [PAD_CHAR] + sorted(set(text) - {PAD_CHAR})
    codes = np.array([ord(c) for c in chars[1:]], dtype=np.uint32)
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    ids = np.searchsorted(codes, points) + 1
    dtype = np.uint8 if len(chars) <= 256 else np.uint32
    return RawChars(ids.astype(dtype), chars)


def windows(ids: np.ndarray, n: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (count, n) and targets (count,): ``ids[j:j+n]`` predicts ``ids[j+n]``, j = 0, step, ..."""
    starts = np.arange(0, len(ids) - n, step)
    return ids[starts[:, None] + np.arange(n)], ids[starts + n]


def sequences(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets, both (count, n): non-overlapping windows and the same shifted by one."""
    starts = np.arange(0, len(ids) - n - 1, n)
    offsets = starts[:, None] + np.arange(n)
    return ids[offsets], ids[offsets + 1]


def random_split(count: int, valid_frac: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a training and a validation set; the validation set is a random ``valid_frac``."""
    order = np.random.default_rng(seed).permutation(count)
    cut = int(valid_frac * count)
    return np.sort(order[cut:]), np.sort(order[:cut])


class WindowBatches:
    """Mini-batches of ``(x, y)`` int64 tensors from window arrays; a new order each pass when shuffled."""

    def __init__(self, x: np.ndarray, y: np.ndarray, bs: int, shuffle: bool = False, seed: int = 0):
        if len(x) != len(y):
            raise ValueError("x and y must have the same number of rows")
        if bs < 1:
            raise ValueError("bs must be positive")
        self.x, self.y, self.bs, self.shuffle = x, y, bs, shuffle
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.bs)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for start in range(0, len(order), self.bs):
            rows = order[start : start + self.bs]
            yield (torch.from_numpy(self.x[rows].astype(np.int64)),
                   torch.from_numpy(self.y[rows].astype(np.int64)))


class LastTarget:
    """Wraps batches of (bs, seq) targets to keep only the last one of each row: (bs,)."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.batches:
            yield x, y[:, -1]


@dataclass
class OneHotToy:
    inputs: torch.Tensor  # (1, seq, letters) one-hot rows
    labels: torch.Tensor  # (seq,) letter ids
    letters: list[str]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.letters[int(i)] for i in ids)


def hihell() -> OneHotToy:
    """Teach an RNN that after "hihell" come the letters of "ihello", one step behind."""
    letters = ["h", "i", "e", "l", "o"]
    x = torch.tensor([letters.index(c) for c in "hihell"])
    y = torch.tensor([letters.index(c) for c in "ihello"])
    return OneHotToy(torch.eye(len(letters))[x][None], y, letters)
