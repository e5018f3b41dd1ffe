"""Prepared corpora: token ids on disk, read back as memory maps, for text larger than memory.

``prepare`` streams the corpus in bounded pieces (see ``chunks``) and makes three passes:

1. count the characters of every document (and check that the files are text, as ``train`` does);
2. count tokens of the training split only, and build the vocab from them (at BPE level: train
   the tokenizer on the training split, ``rnnlm.data.bpe.train_bpe``);
3. encode everything and append the ids to one flat file (BPE: the library's batch encoder, one
   distinct segment of text at a time, see ``rnnlm.data.bpe``).

At word level pass 2 tokenizes everything once: each distinct token gets a dense number
(``wordscan.WordIndex``), the numbers of every piece go to a scratch file in the new folder (4
bytes a token), and pass 3 maps them to vocab ids instead of tokenizing the text again.

The split is the one ``load_corpus`` makes (the last ``valid_frac`` of characters, moved to
the next whitespace at word level, or a ``--valid`` file), so a prepared folder holds exactly
the ids that in-memory encoding gives. The folder is written under a temporary name and renamed
at the end: it is complete or absent.

    DIR/prepared.json   format, source, level, lower, dtype, token and character counts, split offsets
    DIR/vocab.json      the vocab (built on the training split)
    DIR/tokenizer.json  at BPE level: the tokenizer (Hugging Face tokenizers' JSON)
    DIR/ids.bin         train ids then valid ids, flat, of the smallest unsigned type that fits
    DIR/documents.safetensors  a list's documents (--lines, --doc-sep): which items are which

A list's documents are read whole instead (a list of short items fits in memory), split at random
and encoded as in memory (``prepare_documents``); the ids are memory-mapped when training all the same.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import stat
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from rnnlm import __version__
from rnnlm.atomic import write_json
from rnnlm.config import BPE_DEFAULT_VOCAB, DataConfig
from rnnlm.data.bpe import safe_pieces, train_bpe
from rnnlm.data.chunks import CHUNK_BYTES, read_chunks
from rnnlm.data.corpus import is_builtin, load_corpus, text_files
from rnnlm.data.datasets import DATASETS, fetch
from rnnlm.data.encoding import encode_corpus
from rnnlm.data.items import ItemRecord, load_items
from rnnlm.data.human_numbers import human_numbers
from rnnlm.data.tokenizers import (
    LEVELS,
    Tokenizer,
    load_tokenizer,
    make_tokenizer,
    save_tokenizer,
    token_counter,
    token_encoder,
)
from rnnlm.data.vocab import Vocab
from rnnlm.data.wordscan import WordIndex
from rnnlm.errors import RnnlmError, SettingError, invalid, literal, shown
from rnnlm.reading import read_json, regular_file_size

META, VOCAB, IDS = "prepared.json", "vocab.json", "ids.bin"
SCRATCH = "tokens.tmp"  # word level: the dense token numbers of every piece, while the folder is written
BOS_NUMBER = -2  # stands for xxbos among the dense numbers (-1 is never written)
REMAP_BLOCK = 1 << 18  # dense numbers mapped to ids at a time
PREPARED_FORMAT = "rnnlm-prepared"
PREPARED_VERSION = 1
TRAIN, VALID = "train", "valid"

Document = Callable[[], Iterator[str]]  # yields the text of one document in pieces


@dataclass
class PreparedCorpus:
    """A prepared folder opened for reading: ids are read-only memory maps of ``ids.bin``."""

    folder: Path
    name: str
    level: str
    lower: bool
    vocab: Vocab
    tokenizer: Tokenizer
    train_ids: np.ndarray
    valid_ids: np.ndarray
    characters: tuple[int | None, int | None]  # of the train and valid text; None: prepared before they were counted
    meta: dict[str, Any]
    lines: bool = False  # a list's documents, one a line
    doc_sep: str | None = None  # a list's documents, between lines equal to this one
    items: ItemRecord | None = None  # a list's documents: which items are training and validation ones


def is_prepared(source: str | os.PathLike) -> bool:
    """Whether ``source`` is a folder written by ``prepare`` (any path that cannot be looked at is not)."""
    try:
        return stat.S_ISREG(os.stat(Path(source) / META).st_mode)
    except (OSError, ValueError):
        return False


def file_documents(path: Path, chunk_bytes: int, encoding: str = "utf-8", errors: str = "strict") -> list[Document]:
    return [lambda p=p: read_chunks(p, chunk_bytes, encoding, errors) for p in text_files(path)]


def source_documents(data: DataConfig, chunk_bytes: int) -> tuple[str, str, list[Document], list[Document] | None]:
    """Name, natural level, documents, and the fixed validation documents (None: split by position),
    as ``load_corpus`` finds them."""
    source, encoding, errors = data.source, data.encoding, data.errors
    if is_builtin(source):
        natural = DATASETS[source].level
        if source == "human-numbers":
            train_text, valid_text = human_numbers()
            docs, fixed = [lambda: iter([train_text])], [lambda: iter([valid_text])]
        else:
            docs, fixed = file_documents(fetch(source), chunk_bytes), None
        name = source
    else:
        natural, name = "char", Path(os.path.abspath(source)).name
        docs, fixed = file_documents(Path(source), chunk_bytes, encoding, errors), None
    if data.valid is not None:
        fixed = file_documents(Path(data.valid), chunk_bytes, encoding, errors)
    return name, natural, docs, fixed


def next_space(text: str, start: int) -> int:
    """Index of the first whitespace character at or after ``start``, or ``len(text)``."""
    at = start
    while at < len(text) and not text[at].isspace():
        at += 1
    return at


def split_document(pieces: Iterable[str], at: float, level: str) -> Iterator[tuple[str, bool, str]]:
    """``(split, starts_document, text)`` for one document whose first ``at`` characters are
    training text; at word level the cut moves on to the next whitespace, as ``split_by_position``."""
    split, starts, pos = (TRAIN if at > 0 else VALID), True, 0
    for piece in pieces:
        length = len(piece)
        if split == TRAIN and pos + length > at:
            cut = max(int(at) - pos, 0)
            if level == "word":
                cut = next_space(piece, cut)
            if cut < length:
                if cut:
                    yield TRAIN, starts, piece[:cut]
                split, starts, piece = VALID, True, piece[cut:]
        if piece:
            yield split, starts, piece
            starts = False
        pos += length


def split_pieces(
    docs: list[Document], lengths: list[int], fixed: list[Document] | None, valid_frac: float, level: str
) -> Iterator[tuple[str, bool, str]]:
    """Every piece of the corpus in order, labelled train or valid; train always comes first."""
    if fixed is not None:
        for doc in docs:
            yield from split_document(doc(), math.inf, level)
        for doc in fixed:
            yield from split_document(doc(), 0, level)
        return
    cut = int(round(sum(lengths) * (1 - valid_frac)))
    seen = 0
    for doc, length in zip(docs, lengths):
        if length:
            yield from split_document(doc(), cut - seen, level)
        seen += length


class Passes:
    """The three streaming passes over the documents, with a progress bar each."""

    def __init__(self, docs: list[Document], fixed: list[Document] | None, valid_frac: float,
                 level: str, progress: bool):
        self.docs, self.fixed, self.valid_frac, self.level = docs, fixed, valid_frac, level
        self.progress = progress
        self.lengths: list[int] = []
        self.characters = self.documents = 0
        self.index: WordIndex | None = None  # set when the counting pass numbered every token
        self.numbered = {TRAIN: 0, VALID: 0}  # numbers written to the scratch file, and their characters
        self.numbered_characters = {TRAIN: 0, VALID: 0}

    def bar(self, desc: str, total: int | None, unit: str = "char") -> tqdm:
        return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False,
                    disable=not self.progress, dynamic_ncols=True)

    def pieces(self, desc: str) -> Iterator[tuple[str, bool, str]]:
        with self.bar(desc, self.characters) as bar:
            for split, starts, text in split_pieces(self.docs, self.lengths, self.fixed,
                                                    self.valid_frac, self.level):
                yield split, starts, text
                bar.update(len(text))

    def count_characters(self) -> None:
        with self.bar("reading", None) as bar:
            for doc in self.docs + (self.fixed or []):
                length = 0
                for piece in doc():
                    length += len(piece)
                    bar.update(len(piece))
                self.lengths.append(length)
        self.characters = sum(self.lengths)
        self.documents = sum(1 for n in self.lengths if n)
        self.lengths = self.lengths[: len(self.docs)]

    def train_pieces(self, desc: str) -> Iterator[tuple[bool, str]]:
        """``(starts_document, text)`` of the training split."""
        for split, starts, text in self.pieces(desc):
            if split == VALID:
                return
            yield starts, text

    def count_tokens(self, tokenizer: Tokenizer, scratch: Path) -> Counter:
        """Counts of the training split's tokens. A counter with an index (word level) numbers the
        tokens of every piece instead, writing the numbers to ``scratch`` for ``encode``."""
        counter = token_counter(tokenizer)
        index = getattr(counter, "index", None)
        if index is None:
            for _, text in self.train_pieces("counting"):
                counter.update(text)
            return counter.counts()
        bos = np.array([BOS_NUMBER], dtype=np.int32)
        with open(scratch, "wb") as f:
            for split, starts, text in self.pieces("tokenizing"):
                numbers = index.ids(text)
                if split == TRAIN:
                    counter.count_ids(numbers)
                if starts and tokenizer.adds_bos:
                    f.write(memoryview(bos))
                    self.numbered[split] += 1
                f.write(memoryview(numbers))
                self.numbered[split] += len(numbers)
                self.numbered_characters[split] += len(text)
        self.index, self.scratch = index, scratch
        return counter.counts()

    def split_texts(self, desc: str) -> Iterator[tuple[str, bool, str]]:
        """The pieces of ``pieces``; at BPE level cut again where its pre-tokenizer splits anyway
        (``safe_pieces``), so each encodes as it would within its whole document."""
        pieces = self.pieces(desc)
        yield from safe_pieces(pieces) if self.level == "bpe" else pieces

    def encode(self, tokenizer: Tokenizer, vocab: Vocab, out) -> tuple[dict[str, int], dict[str, int]]:
        """Write the ids; the tokens and the characters of each split."""
        if self.index is not None:
            return self.encode_numbers(vocab, out)
        tokens, characters = {TRAIN: 0, VALID: 0}, {TRAIN: 0, VALID: 0}
        bos = np.array([vocab.bos_id], dtype=vocab.dtype)
        encode = token_encoder(tokenizer, vocab)
        for split, starts, text in self.split_texts("encoding"):
            ids = encode(text)
            if starts and tokenizer.adds_bos:
                ids = np.concatenate([bos, ids])
            out.write(memoryview(ids))
            tokens[split] += len(ids)
            characters[split] += len(text)
        return tokens, characters

    def encode_numbers(self, vocab: Vocab, out) -> tuple[dict[str, int], dict[str, int]]:
        """Map the scratch file's dense numbers to vocab ids (``stoi.get``, as ``encode_tokens``)."""
        stoi, unk = vocab.stoi, vocab.unk_id
        ids_of = np.array([stoi.get(tok, unk) for tok in self.index.tokens()] + [vocab.bos_id, unk],
                          dtype=vocab.dtype)  # BOS_NUMBER reads the one before last
        total = sum(self.numbered.values())
        with self.bar("encoding", total, "token") as bar, open(self.scratch, "rb") as f:
            for _ in range(0, total, REMAP_BLOCK):
                numbers = np.frombuffer(f.read(REMAP_BLOCK * 4), dtype=np.int32)
                out.write(memoryview(ids_of[numbers]))
                bar.update(len(numbers))
        self.scratch.unlink()
        return dict(self.numbered), dict(self.numbered_characters)


def new_folder_beside(out: Path) -> Path:
    """A temporary folder next to ``out`` (same file system, so it can be renamed into place)."""
    if out.exists() and not out.is_dir():
        raise invalid("out", f"{out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise SettingError("out", f"{{out}} {literal(out)}: folder is not empty; choose another {{out}}")
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        return tmp
    except OSError as e:
        raise invalid("out", f"{out}: cannot create folder ({e.strerror})") from None


def prepare(
    data: DataConfig, out: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES, progress: bool | None = None
) -> dict[str, Any]:
    """Tokenize the corpus of ``data`` into the folder ``out``; returns what ``prepared.json`` holds.
    The folder is written beside ``out`` and renamed into place: it is whole or not there."""
    data.validate()
    if chunk_bytes < 1:
        raise RnnlmError(f"chunk size must be >= 1 byte (got {chunk_bytes})")
    start = time.monotonic()
    if data.documents:
        return prepare_documents(data, Path(out), start)
    name, natural, docs, fixed = source_documents(data, chunk_bytes)
    level = data.level or natural
    passes = Passes(docs, fixed, data.valid_frac, level, sys.stderr.isatty() if progress is None else progress)
    passes.count_characters()
    if passes.characters == 0:
        raise RnnlmError(f"{data.source}: is empty")

    def fill(tmp: Path) -> dict[str, Any]:
        tokenizer, vocab = learn_vocab(data, level, passes, tmp)
        with open(tmp / IDS, "wb") as f:
            tokens, characters = passes.encode(tokenizer, vocab, f)
            f.flush()
            os.fsync(f.fileno())
        if tokens[TRAIN] < 2:
            raise RnnlmError(
                f"{data.source}: the training split has {tokens[TRAIN]} tokens; it needs at least 2"
            )
        vocab.save(tmp / VOCAB)
        save_tokenizer(tokenizer, tmp)
        return prepared_meta(data, name, tokenizer, vocab, (passes.documents, passes.characters), fixed is not None,
                             tokens, characters, time.monotonic() - start)

    return write_folder(Path(out), fill)


def write_folder(out: Path, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """A new folder beside ``out`` that ``fill`` writes (returning what ``prepared.json`` is to
    hold), renamed into place once it is complete; removed on any failure."""
    tmp = new_folder_beside(out)
    try:
        meta = fill(tmp)
        write_json(tmp / META, meta)
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise invalid("out", f"{out}: cannot write ({e.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def prepare_documents(data: DataConfig, out: Path, start: float) -> dict[str, Any]:
    """A list's documents (``lines`` or ``doc_sep``): read whole (a list of short items fits in
    memory), split at random and encoded as training encodes them in memory
    (``rnnlm.data.encoding``), so the folder holds the same ids; with them, the record of which
    items are training and validation ones (``rnnlm.data.items``)."""
    corpus = load_corpus(data.source, data.valid_frac, data.valid, data.level, data.encoding, data.errors,
                         lines=data.lines, doc_sep=data.doc_sep, valid_docs=data.valid_docs)
    text = encode_corpus(corpus, data)

    def fill(tmp: Path) -> dict[str, Any]:
        with open(tmp / IDS, "wb") as f:
            for ids in (text.train_ids, text.valid_ids):
                f.write(memoryview(np.ascontiguousarray(ids)))
            f.flush()
            os.fsync(f.fileno())
        text.vocab.save(tmp / VOCAB)
        save_tokenizer(text.tokenizer, tmp)
        text.items.save(tmp)
        tokens = {TRAIN: len(text.train_ids), VALID: len(text.valid_ids)}
        split_characters = {TRAIN: text.train_characters, VALID: text.valid_characters}
        documents = len(corpus.train) + len(corpus.valid)
        meta = prepared_meta(data, corpus.name, text.tokenizer, text.vocab, (documents, sum(split_characters.values())),
                             data.valid is not None, tokens, split_characters, time.monotonic() - start)
        return {**meta, "lines": data.lines, "doc_sep": data.doc_sep,
                "valid_docs": None if data.valid is not None else len(corpus.valid)}

    return write_folder(out, fill)


def learn_vocab(data: DataConfig, level: str, passes: Passes, scratch: Path) -> tuple[Tokenizer, Vocab]:
    """The tokenizer and vocab of the training split: BPE merges learnt from it, or its tokens
    counted (in ``scratch``, a folder of the preparation) and kept by ``min_freq`` and ``max_size``."""
    if level == "bpe":
        tokenizer = train_bpe(passes.train_pieces("learning merges"), bpe_vocab_size(data), data.min_freq, data.lower)
        vocab = tokenizer.vocab
    else:
        tokenizer = make_tokenizer(level, data.lower)
        counts = passes.count_tokens(tokenizer, scratch / SCRATCH)
        vocab = Vocab.build(counts, min_freq=data.min_freq, max_size=data.max_size)
    vocab.check_has_tokens(data.source, data.min_freq)
    return tokenizer, vocab


def bpe_vocab_size(data: DataConfig) -> int:
    return data.vocab_size or BPE_DEFAULT_VOCAB


def prepared_meta(data: DataConfig, name: str, tokenizer: Tokenizer, vocab: Vocab, read: tuple[int, int],
                  fixed_split: bool, tokens: dict[str, int], characters: dict[str, int],
                  seconds: float) -> dict[str, Any]:
    """What ``prepared.json`` holds: where the ids came from, how they were made, where each split
    lies; ``read``: the documents and characters read."""
    return {
        "format": PREPARED_FORMAT,
        "version": PREPARED_VERSION,
        "rnnlm": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "name": name,
        "source": data.source if is_builtin(data.source) else os.path.abspath(data.source),
        "valid": os.path.abspath(data.valid) if data.valid else None,
        "level": tokenizer.level,
        "lower": data.lower,
        "encoding": data.encoding,
        "errors": data.errors,
        "min_freq": data.min_freq,
        "max_size": data.max_size,
        "valid_frac": None if fixed_split else data.valid_frac,
        "documents": read[0],
        "characters": read[1],
        "split_characters": characters,
        "bpe_vocab_size": bpe_vocab_size(data) if tokenizer.level == "bpe" else None,
        "vocab_size": len(vocab),
        "dtype": vocab.dtype.name,
        "tokens": tokens,
        "splits": {TRAIN: [0, tokens[TRAIN]], VALID: [tokens[TRAIN], tokens[TRAIN] + tokens[VALID]]},
        "seconds": round(seconds, 3),
    }


META_LIMIT = 1 << 20  # bytes of prepared.json
SCAN_PIECE = 1 << 24  # ids checked at a time when a folder is opened


def damaged(folder: Path, why: str) -> RnnlmError:
    return RnnlmError(f"{folder}: damaged prepared folder ({why}); run rnnlm prepare again")


def read_meta(folder: Path) -> dict[str, Any]:
    meta = read_json(folder / META, META_LIMIT, "prepared corpus", missing="not a prepared folder")
    if not isinstance(meta, dict) or meta.get("format") != PREPARED_FORMAT:
        raise RnnlmError(f"{folder / META}: not an rnnlm prepared corpus")
    if meta.get("version") != PREPARED_VERSION:
        raise RnnlmError(f"{folder / META}: unknown prepared format version {shown(meta.get('version'))}")
    return meta


def read_layout(folder: Path, meta: dict[str, Any]) -> tuple[str, bool, np.dtype, dict[str, tuple[int, int]]]:
    """Level, lower-casing, id type and split offsets of ``meta``, each checked (the folder may
    come from a stranger)."""
    level, lower, dtype, splits = meta.get("level"), meta.get("lower"), meta.get("dtype"), meta.get("splits")
    if level not in LEVELS or not isinstance(lower, bool) or dtype not in ("uint8", "uint16", "uint32"):
        raise damaged(folder, f"{META}: level, lower or dtype missing or wrong")
    bounds = [splits.get(k) for k in (TRAIN, VALID)] if isinstance(splits, dict) else []
    if not (len(bounds) == 2 and all(isinstance(b, list) and len(b) == 2 for b in bounds)
            and all(type(i) is int for b in bounds for i in b)
            and 0 == bounds[0][0] <= bounds[0][1] == bounds[1][0] <= bounds[1][1]):
        raise damaged(folder, f"{META}: split offsets missing or wrong")
    return level, lower, np.dtype(dtype), {TRAIN: tuple(bounds[0]), VALID: tuple(bounds[1])}


def open_prepared(folder: str | os.PathLike) -> PreparedCorpus:
    """Memory-map the ids of a prepared folder. Opening reads the ids once, a piece at a time, to
    check that each names a token of the vocab; training then reads slices of them."""
    folder = Path(folder)
    meta = read_meta(folder)
    vocab = Vocab.load(folder / VOCAB)
    level, lower, dtype, splits = read_layout(folder, meta)
    if dtype != vocab.dtype or meta.get("vocab_size") != len(vocab):
        says = f"{META} says {shown(meta.get('vocab_size'))} tokens as {dtype}"
        raise damaged(folder, f"{says}, {VOCAB} has {len(vocab)}")
    total = splits[VALID][1]
    size = regular_file_size(folder / IDS, missing=f"no {IDS}")
    if size != total * dtype.itemsize or total < 2:
        raise damaged(folder, f"{IDS} is {size:,} bytes, {META} implies {total * dtype.itemsize:,}")
    lines, doc_sep = read_documents_meta(folder, meta)
    tokenizer = load_tokenizer(folder, level, lower, vocab, lines or doc_sep is not None)
    ids = np.memmap(folder / IDS, dtype=dtype, mode="r", shape=(total,))
    for start in range(0, total, SCAN_PIECE):
        if int(ids[start : start + SCAN_PIECE].max()) >= len(vocab):
            raise damaged(folder, f"{IDS} holds ids beyond the {len(vocab)} tokens of {VOCAB}")
    items = load_items(folder) if tokenizer.documents else None
    return PreparedCorpus(folder, str(meta.get("name", folder.name)), level, lower, vocab, tokenizer,
                          ids[slice(*splits[TRAIN])], ids[slice(*splits[VALID])], read_characters(meta), meta,
                          lines, doc_sep, items)


def read_documents_meta(folder: Path, meta: dict[str, Any]) -> tuple[bool, str | None]:
    """How the folder's documents were read (``lines``, ``doc_sep``), checked; a folder prepared
    before lists has neither."""
    lines, doc_sep = meta.get("lines", False), meta.get("doc_sep")
    if not isinstance(lines, bool) or not (doc_sep is None or isinstance(doc_sep, str)) or (lines and doc_sep):
        raise damaged(folder, f"{META}: lines or doc_sep wrong")
    return lines, doc_sep


def read_characters(meta: dict[str, Any]) -> tuple[int | None, int | None]:
    """Characters of the train and valid text, when the folder records them as whole numbers."""
    counts = meta.get("split_characters")
    if not isinstance(counts, dict):
        return None, None
    return tuple(n if type(n) is int and n >= 0 else None for n in (counts.get(TRAIN), counts.get(VALID)))
