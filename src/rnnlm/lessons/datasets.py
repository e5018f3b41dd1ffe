"""The data each lesson trains on, built from the corpus files: batches plus a way to read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from rnnlm.config import DataConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.data.corpus import read_text_file
from rnnlm.data.textdata import build_text_data
from rnnlm.errors import RnnlmError
from rnnlm.lessons.fit import Batches
from rnnlm.lessons.windows import (
    LastTarget,
    WindowBatches,
    random_split,
    raw_chars,
    sequences,
    windows,
)


@dataclass
class LessonData:
    train: Batches
    valid: Batches
    vocab_size: int
    encode: Callable[[str], list[int]]
    decode: Callable[[Iterable[int]], str]
    size: str  # how much data, in words, for the log


def _raw_windows(source: Path, kind: str, bs: int, seq: int, seed: int) -> LessonData:
    text = read_text_file(source)
    raw = raw_chars(text)
    if kind == "triples":
        x, y = windows(raw.ids, seq, step=seq)
    elif kind == "windows":
        x, y = windows(raw.ids, seq, step=1)
    else:
        x, y = sequences(raw.ids, seq)
    if len(x) < 10:
        raise RnnlmError(f"{source}: too short for windows of {seq} characters")
    train, valid = random_split(len(x), 0.2, seed)
    return LessonData(
        WindowBatches(x[train], y[train], bs, shuffle=True, seed=seed),
        WindowBatches(x[valid], y[valid], bs),
        len(raw.chars), raw.encode, raw.decode,
        f"{len(train):,} train / {len(valid):,} valid windows of {seq}, vocab {len(raw.chars)}",
    )


def _streams(config: DataConfig, bs: int, seq: int, last_only: bool = False) -> LessonData:
    data = build_text_data(config)
    if len(data.train_ids) < bs * seq + 1 or len(data.valid_ids) < bs + 1:
        raise RnnlmError(f"{config.source}: too short for {bs} streams of {seq} tokens")
    train, valid = StreamBatches(data.train_ids, bs, seq), StreamBatches(data.valid_ids, bs, seq)
    if last_only:
        train, valid = LastTarget(train), LastTarget(valid)

    def encode(text: str) -> list[int]:
        return data.tokenizer.encode(text, data.vocab).tolist()

    def decode(ids: Iterable[int]) -> str:
        return data.tokenizer.decode(ids, data.vocab)

    return LessonData(train, valid, len(data.vocab), encode, decode,
                      f"{len(data.train_ids):,} train / {len(data.valid_ids):,} valid tokens "
                      f"in {bs} streams, bptt {seq}, vocab {len(data.vocab)}")


DESCRIPTIONS = {
    "nietzsche-triples": "Nietzsche raw (id 0: padding): non-overlapping {seq} chars -> the next; random 20% valid",
    "nietzsche-windows": "Nietzsche raw (id 0: padding): overlapping {seq} chars -> the next; random 20% valid",
    "nietzsche-sequences": "Nietzsche raw (id 0: padding): non-overlapping {seq} chars -> the same shifted by one; "
                           "random 20% valid",
    "nietzsche-streams": "Nietzsche lower-cased, min_freq 3, last 20% valid: {bs} streams, bptt {seq}",
    "human-numbers-last": "human numbers: {bs} streams, bptt {seq}, the last word of a row the target",
    "human-numbers-streams": "human numbers: {bs} streams, bptt {seq}",
    "hihell": "'hihell' as one-hot rows, 'ihello' the labels",
}


def load_lesson_data(name: str, nietzsche: Path, bs: int, seq: int, seed: int) -> LessonData:
    if name in ("nietzsche-triples", "nietzsche-windows", "nietzsche-sequences"):
        return _raw_windows(nietzsche, name.split("-")[1], bs, seq, seed)
    if name == "nietzsche-streams":
        return _streams(DataConfig(source=str(nietzsche), lower=True, min_freq=3, valid_frac=0.2), bs, seq)
    if name in ("human-numbers-last", "human-numbers-streams"):
        return _streams(DataConfig(source="human-numbers"), bs, seq, last_only=name.endswith("last"))
    raise ValueError(f"no lesson dataset {name!r}")
