"""Tokenizers: text to token ids and back, at character or word level.

Character level: every character is a token; encoding is a vectorised lookup over the
code points (numpy), never a Python loop per character. ``decode(encode(text)) == text``
when every character is in the vocab and ``lower`` is off.

Word level: words and punctuation marks are tokens; each document starts with ``xxbos``
as in the lessons. Decoding joins tokens with spaces, so ``encode(decode(ids)) == ids``.
``WORD_RE`` defines the tokens; for large corpora ``counter()`` and ``encoder(vocab)`` find,
count and look them up with numpy (``wordscan``), with the same results.

Byte-level BPE (``rnnlm.data.bpe``): subwords learnt on the training split; exact for any text.
Its stream decoder (``rnnlm.data.streaming.ByteStream``) holds a character split over tokens
until it is whole.

Documents of a list (``--lines``, ``--doc-sep``; ``frame_documents``): at every level each
document is framed by ``xxbos`` (one before each, one after the last), so the model learns to
predict where an item ends; a prompt then starts at ``xxbos`` and drawing it ends a sample.

``token_counter`` and ``token_encoder`` give any tokenizer's fast counter and encoder for many
pieces of text, or wrap its ``count`` and ``encode`` where it has none.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np

from rnnlm.data.bpe import TOKENIZER_FILE, BpeTokenizer, load_bpe
from rnnlm.data.streaming import ByteStream
from rnnlm.data.vocab import SPECIALS, UNK, Vocab
from rnnlm.errors import RnnlmError, invalid

LEVELS = ("char", "word", "bpe")
WORD_RE = re.compile(r"\w+|[^\w\s]")
UNKNOWN_CHAR = "\ufffd"


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer:
    level = "char"
    adds_bos = False  # xxbos starts a document (and a prompt), and ends a sample when drawn
    documents = False  # a list's documents: xxbos after the last one too (frame_documents)

    def __init__(self, lower: bool = False):
        self.lower = lower

    def normalize(self, text: str) -> str:
        return text.lower() if self.lower else text

    def count(self, text: str) -> Counter:
        codes, counts = np.unique(code_points(self.normalize(text)), return_counts=True)
        return Counter({chr(c): int(n) for c, n in zip(codes, counts)})

    @staticmethod
    def id_table(vocab: Vocab) -> np.ndarray:
        """The id of every code point up to the largest in the vocab, then one ``xxunk`` slot."""
        chars = [(ord(tok), i) for i, tok in enumerate(vocab.itos) if tok not in SPECIALS]
        codes = np.array([c for c, _ in chars], dtype=np.int64)
        table = np.full(codes.max(initial=-1) + 2, vocab.unk_id, dtype=vocab.dtype)
        table[codes] = [i for _, i in chars]
        return table

    def encode(self, text: str, vocab: Vocab) -> np.ndarray:
        """One table lookup per character; a code point above the table reads its last slot, ``xxunk``."""
        return self.encoder(vocab)(text)

    def encoder(self, vocab: Vocab) -> Callable[[str], np.ndarray]:
        table = self.id_table(vocab)
        return lambda text: np.take(table, code_points(self.normalize(text)), mode="clip")

    def piece(self, token: str) -> str:
        """The text one token stands for when written out."""
        if token == UNK:
            return UNKNOWN_CHAR
        return "" if token in SPECIALS else token

    def decode(self, ids: Iterable[int], vocab: Vocab) -> str:
        return "".join(self.piece(tok) for tok in vocab.decode_tokens(ids))

    def join(self, pieces: list[str]) -> str:
        return "".join(pieces)

    def stream_decoder(self, vocab: Vocab) -> "StreamDecoder":
        return CharStreamDecoder(self, vocab)


class WordTokenizer:
    level = "word"
    adds_bos = True
    documents = False

    def __init__(self, lower: bool = False):
        self.lower = lower

    def tokens(self, text: str) -> list[str]:
        return WORD_RE.findall(text.lower() if self.lower else text)

    def count(self, text: str) -> Counter:
        return Counter(self.tokens(text))

    def encode(self, text: str, vocab: Vocab) -> np.ndarray:
        return vocab.encode_tokens(self.tokens(text))

    def counter(self) -> TokenCounter:
        from rnnlm.data.wordscan import WordCounter

        return WordCounter(self.lower)

    def encoder(self, vocab: Vocab) -> Callable[[str], np.ndarray]:
        from rnnlm.data.wordscan import WordEncoder

        return WordEncoder(vocab, self.lower)

    def piece(self, token: str) -> str:
        return token

    def decode(self, ids: Iterable[int], vocab: Vocab) -> str:
        return " ".join(vocab.decode_tokens(ids))

    def join(self, pieces: list[str]) -> str:
        return " ".join(pieces)

    def stream_decoder(self, vocab: Vocab) -> "StreamDecoder":
        return WordStreamDecoder(vocab)


Tokenizer = CharTokenizer | WordTokenizer | BpeTokenizer


class CharStreamDecoder:
    """Text of a stream of character ids, one piece per id."""

    def __init__(self, tokenizer: CharTokenizer, vocab: Vocab):
        self.tokenizer, self.vocab = tokenizer, vocab

    def feed(self, token_id: int) -> str:
        return self.tokenizer.piece(self.vocab.itos[token_id])

    def flush(self) -> str:
        return ""


class WordStreamDecoder:
    """Text of a stream of word ids: words joined by single spaces, as ``decode`` joins them.
    Specials (``xxbos``, ``xxpad``) write nothing; the first word written has no space before it."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.started = False

    def feed(self, token_id: int) -> str:
        token = self.vocab.itos[token_id]
        if token in SPECIALS and token != UNK:
            return ""
        text = " " + token if self.started else token
        self.started = True
        return text

    def flush(self) -> str:
        return ""


StreamDecoder = CharStreamDecoder | WordStreamDecoder | ByteStream


class TokenCounter(Protocol):
    def update(self, text: str) -> None: ...

    def counts(self) -> Counter: ...


class PieceCounter:
    """Token counts over many pieces of text, one ``count`` call a piece."""

    def __init__(self, count: Callable[[str], Counter]):
        self.count, self.totals = count, Counter()

    def update(self, text: str) -> None:
        self.totals.update(self.count(text))

    def counts(self) -> Counter:
        return self.totals


def token_counter(tokenizer: Tokenizer) -> TokenCounter:
    """The tokenizer's counter for many pieces of text, or one that calls its ``count``."""
    make = getattr(tokenizer, "counter", None)
    return make() if make else PieceCounter(tokenizer.count)


def token_encoder(tokenizer: Tokenizer, vocab: Vocab) -> Callable[[str], np.ndarray]:
    """The tokenizer's encoder of many pieces of text with one vocab, or its ``encode``."""
    make = getattr(tokenizer, "encoder", None)
    return make(vocab) if make else lambda text: tokenizer.encode(text, vocab)


def frame_documents(tokenizer: Tokenizer, documents: bool) -> Tokenizer:
    """``tokenizer``, framing each document with ``xxbos`` at any level when ``documents`` (a
    list's items): before each one, after the last, at the start of a prompt, and as the token
    that ends a sample."""
    tokenizer.documents = documents
    tokenizer.adds_bos = documents or tokenizer.level == "word"
    return tokenizer


def make_tokenizer(level: str, lower: bool = False, documents: bool = False) -> CharTokenizer | WordTokenizer:
    """The tokenizer of a level that learns nothing (a BPE tokenizer is trained or loaded)."""
    if level == "char":
        return frame_documents(CharTokenizer(lower), documents)
    if level == "word":
        return frame_documents(WordTokenizer(lower), documents)
    if level == "bpe":
        raise RnnlmError("a bpe tokenizer is trained on a corpus or loaded from a folder, not made")
    raise invalid("level", f"must be one of {', '.join(LEVELS)} (got {level!r})")


def save_tokenizer(tokenizer: Tokenizer, folder: Path) -> None:
    """Write what the tokenizer learnt into a run or prepared folder (only BPE learns: tokenizer.json)."""
    if tokenizer.level == "bpe":
        tokenizer.save(folder / TOKENIZER_FILE)


def load_tokenizer(folder: Path, level: str, lower: bool, vocab: Vocab, documents: bool = False) -> Tokenizer:
    """The tokenizer of a run or prepared folder whose vocab is ``vocab`` (tokenizer.json at BPE
    level); ``documents``: it frames documents (``frame_documents``)."""
    if level != "bpe":
        return make_tokenizer(level, lower, documents)
    return frame_documents(load_bpe(folder / TOKENIZER_FILE, vocab, lower), documents)


def encode_documents(docs: Iterable[str], tokenizer: Tokenizer, vocab: Vocab) -> np.ndarray:
    """One id array for a list of documents; at word level, and at every level for a list's
    documents, each document starts with ``xxbos``; a list's documents end with one too."""
    parts, encode = [], token_encoder(tokenizer, vocab)
    bos = np.array([vocab.bos_id], dtype=vocab.dtype)
    for doc in docs:
        if tokenizer.adds_bos:
            parts.append(bos)
        parts.append(encode(doc))
    if tokenizer.documents and parts:
        parts.append(bos)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=vocab.dtype)
