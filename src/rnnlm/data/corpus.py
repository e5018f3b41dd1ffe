"""Corpora: where text comes from (a file, a folder of files, a built-in) and how it splits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rnnlm.data.datasets import DATASETS, fetch
from rnnlm.data.human_numbers import human_numbers
from rnnlm.errors import RnnlmError

TEXT_SUFFIXES = (".txt",)


@dataclass
class Corpus:
    """Documents of a training and a validation split, and the level the source suits best."""

    name: str
    train: list[str]
    valid: list[str]
    level: str


BINARY_PROBE = 8192  # bytes at the start of a file checked for NUL


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def binary_error(path: Path) -> RnnlmError:
    return RnnlmError(f"{path}: looks like a binary file (it has NUL bytes), not text")


def utf8_error(path: Path, offset: int) -> RnnlmError:
    return RnnlmError(f"{path}: not UTF-8 text (invalid byte at offset {offset}); convert it to UTF-8")


def read_text_file(path: Path) -> str:
    """A UTF-8 file (BOM allowed) as text with ``\\n`` line ends; a clear error for anything else."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise RnnlmError(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise RnnlmError(f"{path}: cannot read ({e.strerror})") from None
    if b"\x00" in data[:BINARY_PROBE]:
        raise binary_error(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise utf8_error(path, e.start) from None
    return normalize_newlines(text)


def text_files(path: Path) -> list[Path]:
    """A file stands for itself; a folder for its ``*.txt`` files (hidden ones skipped), in path order."""
    if not path.exists():
        raise RnnlmError(f"{path}: no such file or folder")
    if not path.is_dir():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in TEXT_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise RnnlmError(f"{path}: folder has no {'/'.join(TEXT_SUFFIXES)} files")
    return files


def read_documents(path: Path) -> list[str]:
    """A file is one document; a folder gives one document per ``*.txt`` file, in path order."""
    docs = [d for d in map(read_text_file, text_files(path)) if d]
    if not docs:
        raise RnnlmError(f"{path}: is empty")
    return docs


def split_by_position(docs: list[str], valid_frac: float, level: str) -> tuple[list[str], list[str]]:
    """Cut the concatenated documents so the last ``valid_frac`` of characters is validation.

    At word level the cut moves forward to the next whitespace so no word is split.
    """
    total = sum(len(d) for d in docs)
    cut = int(round(total * (1 - valid_frac)))
    train: list[str] = []
    valid: list[str] = []
    seen = 0
    for doc in docs:
        if seen + len(doc) <= cut:
            train.append(doc)
        elif seen >= cut:
            valid.append(doc)
        else:
            at = cut - seen
            if level == "word":
                while at < len(doc) and not doc[at].isspace():
                    at += 1
            train.append(doc[:at])
            valid.append(doc[at:])
        seen += len(doc)
    return [d for d in train if d], [d for d in valid if d]


def is_builtin(source: str) -> bool:
    return source in DATASETS and not os.path.exists(source)


def load_corpus(source: str, valid_frac: float = 0.2, valid: str | None = None, level: str | None = None) -> Corpus:
    """Read ``source`` (a built-in name, a file or a folder) and split it.

    ``valid`` names a file or folder used whole as the validation split instead of a positional cut.
    """
    if is_builtin(source):
        dataset = DATASETS[source]
        natural = dataset.level
        if source == "human-numbers":
            train_text, valid_text = human_numbers()
            docs, fixed_valid = [train_text], [valid_text]
        else:
            docs, fixed_valid = read_documents(fetch(source)), None
    else:
        natural = "char"
        docs, fixed_valid = read_documents(Path(source)), None
    level = level or natural
    name = source if is_builtin(source) else Path(source).resolve().name
    if valid is not None:
        return Corpus(name, docs, read_documents(Path(valid)), level)
    if fixed_valid is not None:
        return Corpus(name, docs, fixed_valid, level)
    train_docs, valid_docs = split_by_position(docs, valid_frac, level)
    return Corpus(name, train_docs, valid_docs, level)
