"""Corpora: where text comes from (a file, a folder of files, a built-in) and how it splits."""

from __future__ import annotations

import codecs
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rnnlm.data.datasets import DATASETS, fetch
from rnnlm.data.documents import held_out_count, random_split, shuffled, split_items
from rnnlm.data.human_numbers import human_numbers
from rnnlm.device import machine_memory, size_text
from rnnlm.errors import RnnlmError, SettingError, literal
from rnnlm.reading import os_reason, read_file, regular_file_size

TEXT_SUFFIXES = (".txt",)
STDIN = "-"  # the path that stands for standard input


@dataclass
class Corpus:
    """Documents of a training and a validation split, and the level the source suits best."""

    name: str
    train: list[str]
    valid: list[str]
    level: str
    documents: bool = False  # documents of a list (--lines, --doc-sep): framed, split at random


BINARY_PROBE = 8192  # characters at the start of a file checked for NUL
NUL_SHARE = 0.01  # more NUL characters than this share of the probe: a binary file
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def normalize_newlines(text: str) -> str:
    if "\r" not in text:  # one scan, where the two replacements would make two
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def looks_binary(probe: str) -> bool:
    """NUL is rare in text and common in binary files: a few NULs in otherwise valid text are kept
    as characters like any other; more than one in a hundred of ``probe`` means a binary file."""
    return probe.count("\0") > NUL_SHARE * len(probe)


def binary_error(path: Path) -> RnnlmError:
    return RnnlmError(f"{path}: looks like a binary file (it has NUL bytes), not text")


def utf8_error(path: Path, offset: int, encoding: str = "utf-8") -> RnnlmError:
    name = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    return SettingError("encoding", f"{literal(path)}: not {name} text (invalid byte at offset {offset}); convert "
                                    "it to UTF-8, or pass {encoding} (e.g. latin-1) or {errors} replace")


def text_codec(data: bytes, encoding: str) -> str:
    """The codec to decode ``data`` with: UTF-8 (the default) drops a UTF-8 BOM, and a file that
    starts with a UTF-16 or UTF-32 BOM is read as such (Windows editors write those)."""
    if codecs.lookup(encoding).name != "utf-8":
        return encoding
    return next((name for bom, name in BOMS if data.startswith(bom)), "utf-8-sig")


def decode_error(path: Path, offset: int, head: bytes, encoding: str) -> RnnlmError:
    """The error for bytes ``encoding`` cannot read at ``offset``; ``head``: the file's first bytes."""
    return binary_error(path) if b"\0" in head[:BINARY_PROBE] else utf8_error(path, offset, encoding)


def check_not_binary(path: Path, text_head: str, head: bytes, codec: str) -> None:
    """Refuse a binary file, judged by the first ``BINARY_PROBE`` characters of its text and
    bytes (a file read by pieces is judged by the same start as one read whole)."""
    if looks_binary(text_head[:BINARY_PROBE]):
        if codec == "utf-8-sig" and utf16_without_bom(head[:BINARY_PROBE]):
            raise SettingError("encoding", f"{literal(path)}: looks like UTF-16 text without a BOM; pass {{encoding}} "
                                           "utf-16-le (or utf-16-be)")
        raise binary_error(path)


def decode_text(data: bytes, path: Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Text with ``\\n`` line ends from the bytes of a file; a clear error for a binary file or
    bytes that ``encoding`` cannot read (unless ``errors`` is replace or ignore)."""
    codec = text_codec(data, encoding)
    try:
        text = data.decode(codec, errors)
    except UnicodeDecodeError as e:
        raise decode_error(path, e.start, data, encoding) from None
    check_not_binary(path, text, data, codec)
    return normalize_newlines(text)


def utf16_without_bom(probe: bytes) -> bool:
    """Mostly ASCII text in UTF-16: every other byte is NUL."""
    halves = probe[0::2], probe[1::2]
    return len(probe) >= 4 and any(h.count(0) >= 0.9 * len(h) for h in halves) and not all(
        h.count(0) >= 0.9 * len(h) for h in halves)


def read_text_file(path: Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    """A text file (UTF-8 unless told otherwise, BOM allowed) as text with ``\\n`` line ends; a
    clear error for anything else (a folder, a named pipe, a device, a binary file)."""
    return decode_text(read_file(path), path, encoding, errors)


def read_text_input(path: str, encoding: str, errors: str, limit: int,
                    too_large: Callable[[str, int | None], RnnlmError]) -> str:
    """A text a user hands a command (a prompt, a text to score or check): the file ``path``, or
    standard input for ``-``, decoded as a corpus file is. At most ``limit`` bytes: a larger file
    is refused before it is read (``too_large(path, its size)``), and standard input, whose size
    is not known before, once more than ``limit`` bytes have come (``too_large("-", None)``)."""
    if path == STDIN:
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise too_large(path, None)
        return decode_text(data, Path("<stdin>"), encoding, errors)
    size = regular_file_size(path)
    if size > limit:
        raise too_large(path, size)
    return read_text_file(Path(path), encoding, errors)


def text_files(path: Path) -> list[Path]:
    """A file stands for itself; a folder for its ``*.txt`` files (hidden ones skipped), in path order."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise os_reason(path, e) from None
    if not stat.S_ISDIR(info.st_mode):
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


def read_documents(path: Path, encoding: str = "utf-8", errors: str = "strict") -> list[str]:
    """A file is one document; a folder gives one document per ``*.txt`` file, in path order.

    The text is held in memory, as bytes and then as text at least: a corpus larger than half
    the machine's memory is refused before it is read."""
    return [text for _, text in read_named_texts(path, encoding, errors)]


def read_named_texts(path: Path, encoding: str = "utf-8", errors: str = "strict") -> list[tuple[str, str]]:
    """``(name, text)`` of every non-empty file of ``path`` (as ``read_documents`` reads them)."""
    files = text_files(path)
    size = sum(regular_file_size(p) for p in files)
    memory = machine_memory()
    if 2 * size > memory:
        raise RnnlmError(f"{path}: {size_text(size)} of text, more than half of this machine's {size_text(memory)} "
                         "of memory; reading it whole would not fit (rnnlm prepare reads it in pieces)")
    texts = [(str(p), t) for p, t in ((p, read_text_file(p, encoding, errors)) for p in files) if t]
    if not texts:
        raise RnnlmError(f"{path}: is empty")
    return texts


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


def load_corpus(source: str, valid_frac: float = 0.2, valid: str | None = None, level: str | None = None,
                encoding: str = "utf-8", errors: str = "strict", *, lines: bool = False, doc_sep: str | None = None,
                valid_docs: int | None = None) -> Corpus:
    """Read ``source`` (a built-in name, a file or a folder) and split it.

    ``valid`` names a file or folder used whole as the validation split instead of a positional cut.
    ``encoding`` and ``errors`` say how to read the bytes of files (see ``decode_text``).
    ``lines`` or ``doc_sep``: the corpus is a list of documents (``load_documents``).
    """
    if lines or doc_sep is not None:
        return load_documents(source, valid_frac, valid, level, encoding, errors, lines, doc_sep, valid_docs)
    natural, docs, fixed_valid = source_texts(source, encoding, errors)
    level = level or natural
    name = corpus_name(source)
    if valid is not None:
        return Corpus(name, docs, read_documents(Path(valid), encoding, errors), level)
    if fixed_valid is not None:
        return Corpus(name, docs, fixed_valid, level)
    train_docs, valid_docs = split_by_position(docs, valid_frac, level)
    return Corpus(name, train_docs, valid_docs, level)


def corpus_name(source: str) -> str:
    return source if is_builtin(source) else Path(os.path.abspath(source)).name


def source_texts(source: str, encoding: str, errors: str) -> tuple[str, list[str], list[str] | None]:
    """The natural level of ``source``, its documents and its own validation documents (a
    built-in's fixed split; None: none)."""
    if not is_builtin(source):
        return "char", read_documents(Path(source), encoding, errors), None
    if source == "human-numbers":
        train_text, valid_text = human_numbers()
        return DATASETS[source].level, [train_text], [valid_text]
    return DATASETS[source].level, read_documents(fetch(source)), None


def load_documents(source: str, valid_frac: float, valid: str | None, level: str | None, encoding: str, errors: str,
                   lines: bool, doc_sep: str | None, valid_docs: int | None) -> Corpus:
    """A list: every non-empty line of ``source`` a document (``lines``), or every piece between
    lines equal to ``doc_sep``. Validation: ``valid`` (its documents, read the same way), or
    documents drawn at random with a fixed seed (``rnnlm.data.documents``); both splits shuffled."""
    if is_builtin(source):
        natural, texts, fixed = source_texts(source, encoding, errors)
        named = [(source, text) for text in texts]
        fixed_named = None if fixed is None else [(f"{source} (valid)", text) for text in fixed]
    else:
        natural, named, fixed_named = "char", read_named_texts(Path(source), encoding, errors), None
    if valid is not None:
        fixed_named = read_named_texts(Path(valid), encoding, errors)
    items = split_items(named, lines, doc_sep)
    if fixed_named is not None:
        train, held = shuffled(items), shuffled(split_items(fixed_named, lines, doc_sep))
    else:
        train, held = random_split(items, held_out_count(len(items), valid_frac, valid_docs))
    return Corpus(corpus_name(source), train, held, level or natural, documents=True)
