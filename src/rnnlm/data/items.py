"""Which items of a list a run trained and validated on, and the verdict on a new one.

A run trained on documents (``--lines``, ``--doc-sep``) keeps the record of its split in its run
folder (``documents.safetensors``): a 64-bit hash of every training and every validation item,
each split sorted. That is enough to tell, for any text, whether it is a whole item of the
training list, of the validation list, or new, without the corpus (a run folder travels alone)
and without copying the list into the folder. Items are compared as the model sees them: lower-cased
when the run lower-cased its corpus, and at word level as their words (spacing aside).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from rnnlm.atomic import write_bytes
from rnnlm.errors import RnnlmError
from rnnlm.reading import read_file

ITEMS_FILE = "documents.safetensors"
ITEMS_FORMAT = "rnnlm-documents"
NEW, IN_TRAINING, IN_VALIDATION = "new", "in training", "in validation"
VERDICTS = (NEW, IN_TRAINING, IN_VALIDATION)
MAX_ITEMS_BYTES = 1 << 31  # 8 bytes an item: some 268 million items


def item_key(tokenizer, text: str) -> bytes:
    """What an item is compared by: its text as the tokenizer reads it (words joined by one space
    at word level)."""
    if tokenizer.level == "word":
        text = " ".join(tokenizer.tokens(text))
    else:
        text = tokenizer.normalize(text)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def item_hashes(tokenizer, items: Iterable[str]) -> np.ndarray:
    """The sorted 64-bit hashes of ``items``, repeats kept."""
    keys = b"".join(item_key(tokenizer, item) for item in items)
    return np.sort(np.frombuffer(keys, dtype="<u8"))


def holds(hashes: np.ndarray, key: np.uint64) -> bool:
    at = int(np.searchsorted(hashes, key))
    return at < len(hashes) and hashes[at] == key


@dataclass
class ItemRecord:
    """The hashes of the training and the validation items of a run (each sorted)."""

    train: np.ndarray  # (train items,) uint64
    valid: np.ndarray  # (valid items,) uint64

    @classmethod
    def of(cls, tokenizer, train: Iterable[str], valid: Iterable[str]) -> "ItemRecord":
        return cls(item_hashes(tokenizer, train), item_hashes(tokenizer, valid))

    def verdict(self, tokenizer, text: str) -> str:
        """``in training`` when ``text`` is a whole training item, else ``in validation`` when it
        is a whole validation item, else ``new``."""
        key = np.frombuffer(item_key(tokenizer, text), dtype="<u8")[0]
        if holds(self.train, key):
            return IN_TRAINING
        return IN_VALIDATION if holds(self.valid, key) else NEW

    def save(self, folder: Path) -> None:
        data = save_safetensors({"train": self.train, "valid": self.valid}, metadata={"format": ITEMS_FORMAT})
        write_bytes(folder / ITEMS_FILE, data)


def load_items(folder: str | os.PathLike) -> ItemRecord | None:
    """The record of a run folder (or a prepared folder); None when it has none (a run that was
    not trained on documents). A damaged one is refused."""
    path = Path(folder) / ITEMS_FILE
    if not os.path.lexists(path):
        return None
    try:
        tensors = load_safetensors(read_file(path, MAX_ITEMS_BYTES, "record of documents"))
    except (SafetensorError, ValueError) as e:
        raise RnnlmError(f"{path}: damaged or not a safetensors file ({str(e)[:200]})") from None
    if set(tensors) != {"train", "valid"} or any(t.dtype != np.uint64 or t.ndim != 1 for t in tensors.values()):
        raise RnnlmError(f"{path}: not a record of documents (two lists of 64-bit hashes, train and valid)")
    train, valid = tensors["train"], tensors["valid"]
    if np.any(train[1:] < train[:-1]) or np.any(valid[1:] < valid[:-1]):
        raise RnnlmError(f"{path}: its hashes are not sorted")
    return ItemRecord(train, valid)
