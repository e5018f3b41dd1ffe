"""The training text of a run, read as the run read it, streamed as blocks of symbols.

The same source (a file, a folder of ``.txt`` files, a built-in, a folder written by ``rnnlm
prepare``), the same encoding and ``errors``, the same lower-casing, and only the training
split: the first ``1 - valid_frac`` of the characters (cut as ``load_corpus`` cuts them: the
documents counted first, then the cut moved on to a space at word level), or the whole source
when the run had a ``--valid`` file; for a list (``--lines``, ``--doc-sep``), its training items,
split at random as the run split them. Files are read in pieces (``read_chunks``), so memory does
not grow with the corpus.

Symbols: code points at character level. At word level, the words of the texts being checked
are numbered (``Vocabulary``) and every training word gets that number or ``NO_WORD``; a
training word is matched to a text word by the fingerprint of its characters, found with the
text's words in a ``HashIndex``, so a word the texts do not have costs no dictionary lookup,
and the tokenizer is numpy over code points (the classes of ``WORD_RE``: word characters,
spaces, the rest). Fingerprints can collide, so a word block checks its words' characters
before a match counts (``WordBlock.agree``). A prepared folder is scanned as its token ids.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from rnnlm.config import DataConfig
from rnnlm.data.chunks import CHUNK_BYTES, read_chunks
from rnnlm.data.corpus import is_builtin, load_corpus, text_files
from rnnlm.data.datasets import DATASETS, cache_dir
from rnnlm.data.human_numbers import human_numbers
from rnnlm.data.prepare import IDS, TRAIN, VALID, VOCAB, damaged, is_prepared, read_layout, read_meta, split_document
from rnnlm.data.tokenizers import WORD_RE, code_points
from rnnlm.data.vocab import SPECIALS, Vocab
from rnnlm.errors import RnnlmError, shown
from rnnlm.inspect.ahead import ahead
from rnnlm.inspect.hashing import HashCollision, HashIndex, Powers, Scratch
from rnnlm.inspect.matching import Block, TextUnits, joined
from rnnlm.reading import open_regular_file, os_reason, regular_file_size

NEWLINE = ord("\n")
UNKNOWN = 1 << 32  # a text unit no training symbol can equal (ids are at most uint32)
PREPARED_BLOCK = 1 << 18  # ids scanned at a time from a prepared folder
WORD_CHUNK_BYTES = 1 << 20  # bytes read at a time at word level (a block has ~5x fewer words than characters)

Pieces = Callable[[], Iterator[str]]  # the text of one document, in pieces


@dataclass
class CharBlock(Block):
    """Code points of a document from character ``start``; ``lines``: newlines before them,
    ``newlines``: newlines among them."""

    lines: int = 0
    newlines: int = 0

    def where(self, i: int) -> dict:
        line = self.lines + int(np.count_nonzero(self.ids[:i] == NEWLINE)) + 1
        return {"document": self.document, "char": self.start + i, "line": line}

    def tail(self, count: int) -> "CharBlock":
        cut = len(self.ids) - count
        ids = self.ids[cut:].copy()
        kept = int(np.count_nonzero(ids == NEWLINE))
        return CharBlock(ids, self.document, self.start + cut, False, self.lines + self.newlines - kept, kept)

    def join(self, after: "CharBlock", scratch: Scratch) -> "CharBlock":
        return CharBlock(joined(scratch, "ids", self.ids, after.ids), self.document, self.start, self.first,
                         self.lines, self.newlines + after.newlines)


@dataclass
class WordBlock(Block):
    """Words of a document from word ``start``: their numbers (``ids``) and the text they are
    cut from (``text``, from character ``char_start`` of the document, after ``lines``
    newlines), each word ``text[starts[i]:ends[i]]``."""

    text: str = ""
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None
    char_start: int = 0
    lines: int = 0

    def word(self, i: int) -> str:
        return self.text[self.starts[i] : self.ends[i]]

    def agree(self, i: int, text: TextUnits, j: int, length: int) -> int:
        same = super().agree(i, text, j, length)  # equal words have equal numbers: an upper bound
        return next((t for t in range(same) if self.word(i + t) != text.strings[j + t]), same)

    def confirm(self, starts: np.ndarray, text: TextUnits, text_starts: np.ndarray, n: int) -> np.ndarray:
        good = super().confirm(starts, text, text_starts, n)
        for at in np.flatnonzero(good):
            good[at] = self.agree(int(starts[at]), text, int(text_starts[at]), n) == n
        return good

    def where(self, i: int) -> dict:
        char = int(self.starts[i])
        return {"document": self.document, "token": self.start + i, "char": self.char_start + char,
                "line": self.lines + self.text.count("\n", 0, char) + 1}

    def tail(self, count: int) -> "WordBlock":
        cut = len(self.ids) - count
        at = int(self.starts[cut]) if count else len(self.text)
        return WordBlock(self.ids[cut:].copy(), self.document, self.start + cut, False, self.text[at:],
                         self.starts[cut:] - at, self.ends[cut:] - at, self.char_start + at,
                         self.lines + self.text.count("\n", 0, at))

    def join(self, after: "WordBlock", scratch: Scratch) -> "WordBlock":
        shift = len(self.text)
        return WordBlock(joined(scratch, "ids", self.ids, after.ids), self.document, self.start, self.first,
                         self.text + after.text, joined(scratch, "starts", self.starts, after.starts, shift),
                         joined(scratch, "ends", self.ends, after.ends, shift), self.char_start, self.lines)


SPACE, WORD, OTHER = 0, 1, 2


class CharClasses:
    """The class of every code point under ``WORD_RE`` (``\\w+|[^\\w\\s]``): SPACE, WORD or
    OTHER, found by the regular expression itself, a page of code points at a time as texts
    reach them (all of Unicode takes a third of a second)."""

    PAGE = 1 << 12

    def __init__(self) -> None:
        self.table = np.zeros(0, dtype=np.uint8)

    def grow(self, top: int) -> None:
        end = min(-(-(top + 1) // self.PAGE) * self.PAGE, 0x110000)
        chars = "".join(map(chr, range(len(self.table), end)))
        classes = np.full(len(chars), OTHER, dtype=np.uint8)
        for pattern, value in ((r"\w+", WORD), (r"\s+", SPACE)):
            for m in re.finditer(pattern, chars):
                classes[m.start() : m.end()] = value
        self.table = np.concatenate([self.table, classes])

    def of(self, codes: np.ndarray) -> np.ndarray:
        if len(codes) and int(codes.max()) >= len(self.table):
            self.grow(int(codes.max()))
        return self.table[codes]


CHAR_CLASSES = CharClasses()


def word_spans(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the words of ``WORD_RE.findall`` over the code points ``codes``:
    runs of word characters, and every character that is neither a word character nor a space."""
    kind = CHAR_CLASSES.of(codes)
    word, other = kind == WORD, kind == OTHER
    begins = word.copy()
    begins[1:] &= ~word[:-1]
    finishes = word.copy()
    finishes[:-1] &= ~word[1:]
    return np.flatnonzero(begins | other), np.flatnonzero(finishes | other) + 1


def text_words(text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The words of ``text`` as ``WordTokenizer`` finds them, with their character spans."""
    found = list(WORD_RE.finditer(text))
    starts = np.array([m.start() for m in found], dtype=np.int64)
    ends = np.array([m.end() for m in found], dtype=np.int64)
    return [m.group() for m in found], starts, ends


class Vocabulary:
    """The words of the texts being checked, numbered in order of appearance; the special tokens
    (``xxunk`` stands for a word the model did not know) are never matched."""

    def __init__(self) -> None:
        self.number: dict[str, int] = {}

    def units(self, words: list[str]) -> np.ndarray:
        numbers = [UNKNOWN if w in SPECIALS else self.number.setdefault(w, len(self.number)) for w in words]
        return np.array(numbers, dtype=np.int64)

    def index(self, powers: Powers) -> HashIndex:
        """The fingerprints of the words, found again by ``HashIndex.find`` as their numbers."""
        words = list(self.number)
        codes = code_points("".join(words))
        ends = np.cumsum([len(w) for w in words], dtype=np.int64)
        starts = ends - np.array([len(w) for w in words], dtype=np.int64)
        keys = powers.spans(powers.prefix(codes), starts, ends)
        if len(np.unique(keys)) != len(keys):
            raise HashCollision
        return HashIndex(keys)


class TrainingText:
    """What ``novelty`` scans: ``encode`` the texts, then ``blocks`` streams the training symbols."""

    description: str
    level: str
    lower: bool
    note: str | None = None  # said in every report

    def encode(self, texts: list[str]) -> list[TextUnits]:
        raise NotImplementedError

    def blocks(self, powers: Powers, progress: bool) -> Iterator[Block]:
        raise NotImplementedError

    def compared(self, text: str) -> str:
        """``text`` as it is compared: lower-cased if the run lower-cased its corpus."""
        return text.lower() if self.lower else text


class RawTraining(TrainingText):
    """Text files or a built-in text: ``documents`` as ``(name, pieces)``; ``valid_frac``: the
    share held out at the end (None: all of it is training text)."""

    def __init__(self, documents: list[tuple[str, Pieces]], level: str, lower: bool, valid_frac: float | None,
                 description: str, note: str | None = None):
        self.documents, self.level, self.lower, self.valid_frac = documents, level, lower, valid_frac
        self.description, self.note = description, note
        self.vocabulary = Vocabulary()

    def encode(self, texts: list[str]) -> list[TextUnits]:
        out = []
        for text in map(self.compared, texts):
            if self.level == "char":
                out.append(TextUnits(code_points(text).astype(np.int64), text))
            else:
                words, starts, ends = text_words(text)
                out.append(TextUnits(self.vocabulary.units(words), text, (starts, ends), words))
        return out

    def blocks(self, powers: Powers, progress: bool) -> Iterator[Block]:
        """Read, decode and cut into words in a thread ahead; the words are numbered here."""
        if self.level == "char":
            return ahead(self.stream(powers, progress))
        index = self.vocabulary.index(powers)  # may raise HashCollision
        return numbered(ahead(self.stream(powers, progress)), index, len(self.vocabulary.number))

    def stream(self, powers: Powers, progress: bool) -> Iterator[Block]:
        lengths = self.count(progress) if self.valid_frac is not None else None
        total = None if lengths is None else int(round(sum(lengths) * (1 - self.valid_frac)))
        with tqdm(total=total, desc="scanning", unit="char", unit_scale=True, leave=False, dynamic_ncols=True,
                  disable=not progress) as bar:
            seen = 0
            for d, (name, pieces) in enumerate(self.documents):
                at = math.inf if total is None else total - seen
                if at <= 0:
                    return
                chars = lines = units = 0
                first = True
                for split, _, piece in split_document(pieces(), at, self.level):
                    if split == VALID:
                        break
                    bar.update(len(piece))
                    piece = self.compared(piece)
                    newlines = piece.count("\n")
                    block = (CharBlock(code_points(piece), name, chars, True, lines, newlines) if self.level == "char"
                             else word_block(piece, name, units, chars, lines, powers))
                    chars, lines = chars + len(piece), lines + newlines
                    if len(block):
                        block.first, first = first, False
                        units += len(block)
                        yield block
                seen += lengths[d] if lengths is not None else 0

    def count(self, progress: bool) -> list[int]:
        """The characters of every document (the split is a share of their sum)."""
        lengths = []
        with tqdm(desc="counting", unit="char", unit_scale=True, leave=False, dynamic_ncols=True,
                  disable=not progress) as bar:
            for _, pieces in self.documents:
                length = 0
                for piece in pieces():
                    length += len(piece)
                    bar.update(len(piece))
                lengths.append(length)
        return lengths


def word_block(piece: str, name: str, units: int, chars: int, lines: int, powers: Powers) -> WordBlock:
    """The words of ``piece``, their fingerprints for ids until ``numbered`` numbers them."""
    codes = code_points(piece)
    starts, ends = word_spans(codes)
    return WordBlock(powers.spans(powers.prefix(codes), starts, ends), name, units, True, piece, starts, ends,
                     chars, lines)


def numbered(blocks: Iterator[WordBlock], index: HashIndex, unknown: int) -> Iterator[WordBlock]:
    """The blocks with the number of each word (``index``: the texts' words), ``unknown`` for
    a word no text has."""
    try:
        for block in blocks:
            numbers = index.find(block.ids)
            numbers[numbers < 0] = unknown
            block.ids = numbers.astype(np.uint32)
            yield block
    finally:
        blocks.close()


class PreparedTraining(TrainingText):
    """The training ids of a folder written by ``rnnlm prepare``, read a block at a time (a
    memory map would hold every page it has read in this process's resident memory). The text is
    encoded with the folder's vocab; a unit it lacks (and ``xxunk`` in the ids, which stands
    for every token it lacks) matches nothing. The ids are not checked against the vocab, as
    ``open_prepared`` does before training: an id beyond it cannot match a text unit either."""

    def __init__(self, folder: Path):
        meta = read_meta(folder)
        self.vocab = Vocab.load(folder / VOCAB)
        self.level, self.lower, dtype, splits = read_layout(folder, meta)
        total = splits[VALID][1]
        size = regular_file_size(folder / IDS, missing=f"no {IDS}")
        if size != total * dtype.itemsize:
            raise damaged(folder, f"{IDS} is {size:,} bytes, prepared.json implies {total * dtype.itemsize:,}")
        self.folder, self.dtype, self.tokens = folder, dtype, splits[TRAIN][1]
        self.description = f"{folder} (prepared, {splits[TRAIN][1]:,} training tokens)"

    def id_of(self, token: str) -> int:
        return UNKNOWN if token in SPECIALS else self.vocab.stoi.get(token, UNKNOWN)

    def encode(self, texts: list[str]) -> list[TextUnits]:
        out = []
        for text in map(self.compared, texts):
            if self.level == "char":
                codes, where = np.unique(code_points(text), return_inverse=True)
                ids = np.array([self.id_of(chr(c)) for c in codes.tolist()], dtype=np.int64)
                out.append(TextUnits(ids[where], text))
            else:
                words, starts, ends = text_words(text)
                out.append(TextUnits(np.array([self.id_of(w) for w in words], dtype=np.int64), text, (starts, ends)))
        return out

    def blocks(self, powers: Powers, progress: bool) -> Iterator[Block]:
        return ahead(self.stream(progress))

    def stream(self, progress: bool) -> Iterator[Block]:
        path = self.folder / IDS
        with open_regular_file(path) as f, tqdm(total=self.tokens, desc="scanning", unit="tok", unit_scale=True,
                                                 leave=False, dynamic_ncols=True, disable=not progress) as bar:
            for start in range(0, self.tokens, PREPARED_BLOCK):  # the training ids come first
                block = np.empty(min(PREPARED_BLOCK, self.tokens - start), dtype=self.dtype)
                try:
                    read = f.readinto(memoryview(block).cast("B"))
                except OSError as e:
                    raise os_reason(path, e) from None
                if read != block.nbytes:
                    raise damaged(self.folder, f"{IDS} ended early, at {start * self.dtype.itemsize + read:,} bytes")
                bar.update(len(block))
                yield Block(block, str(path), start, start == 0)


def describe_split(source: str, valid_frac: float | None, valid: str | None) -> str:
    if valid is not None:
        return f"{source} (all of it; the run validated on {valid})"
    if valid_frac is None:
        return f"{source} (its training split)"
    return f"{source} (its first {1 - valid_frac:.0%}: the training split)"


def training_text(data: DataConfig, run: Path | None = None, chunk_bytes: int | None = None,
                  owner: str | None = None) -> TrainingText:
    """The training text of ``data`` (a run's data settings) as the run read it. ``run`` names
    the run folder in the error for a corpus that is gone (``owner``: what the error says before
    the corpus). BPE tokens are compared as the characters they spell."""
    data.validate()
    source = data.source
    owner = owner or (f"{run}: its corpus " if run is not None else "")
    if is_prepared(source):
        meta = read_meta(Path(source))
        if meta.get("level") != "bpe":
            return PreparedTraining(Path(source))
        return training_text(prepared_source(Path(source), meta), run, chunk_bytes,
                             f"{run or source}: {source} holds BPE ids, compared as the characters of their source; "
                             "the source ")
    level = "char" if data.level == "bpe" else data.level or (DATASETS[source].level if is_builtin(source) else "char")
    note = "a BPE-level run: the text is compared character by character" if data.level == "bpe" else None
    if data.documents:
        return training_items(data, level, owner, note)
    chunk_bytes = chunk_bytes or (CHUNK_BYTES if level == "char" else WORD_CHUNK_BYTES)
    valid_frac = None if data.valid is not None else data.valid_frac
    if source == "human-numbers" and is_builtin(source):
        train, _ = human_numbers()
        documents: list[tuple[str, Pieces]] = [(source, lambda: iter([train]))]
        valid_frac = None
    elif is_builtin(source):
        path = cache_dir() / f"{source}.txt"
        if not path.is_file():
            raise RnnlmError(f"{source}: the built-in dataset is not in the cache ({path}); `rnnlm train {source}` "
                             "downloads it")
        documents = [(source, lambda: read_chunks(path, chunk_bytes))]
    else:
        if not os.path.lexists(source):
            raise RnnlmError(f"{owner}{shown(source, 300)} is gone (novelty reads the text the run was trained on)")
        documents = [(str(p), lambda p=p: read_chunks(p, chunk_bytes, data.encoding, data.errors))
                     for p in text_files(Path(source))]
    return RawTraining(documents, level, data.lower, valid_frac, describe_split(source, valid_frac, data.valid), note)


def training_items(data: DataConfig, level: str, owner: str, note: str | None) -> RawTraining:
    """The training items of a list (``lines``, ``doc_sep``), split as the run split them; each
    is a document of its own, so that no copied span runs from one item into the next. A list is
    read whole (its items are short)."""
    if not is_builtin(data.source) and not os.path.lexists(data.source):
        raise RnnlmError(f"{owner}{shown(data.source, 300)} is gone (novelty reads the text the run was trained on)")
    corpus = load_corpus(data.source, data.valid_frac, data.valid, level, data.encoding, data.errors,
                         lines=data.lines, doc_sep=data.doc_sep, valid_docs=data.valid_docs)
    documents = [(f"the training item {shown(item, 80)}", lambda item=item: iter([item])) for item in corpus.train]
    description = f"{data.source} ({len(corpus.train):,} training items; {len(corpus.valid):,} held out)"
    return RawTraining(documents, level, data.lower, None, description, note)


def prepared_source(folder: Path, meta: dict) -> DataConfig:
    """The data settings a prepared folder was made from (prepared.json records them)."""
    try:
        data = DataConfig(source=meta.get("source"), valid=meta.get("valid"),
                          valid_frac=meta.get("valid_frac") or DataConfig.valid_frac, level="bpe",
                          lower=meta.get("lower"), encoding=meta.get("encoding"), errors=meta.get("errors"),
                          lines=meta.get("lines", False), doc_sep=meta.get("doc_sep"),
                          valid_docs=meta.get("valid_docs"))
        data.validate()
    except RnnlmError as e:
        raise damaged(folder, f"prepared.json: {e}") from None
    return data
