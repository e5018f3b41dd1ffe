"""Byte-level BPE subwords, trained and applied by Hugging Face ``tokenizers``.

The text's UTF-8 bytes are the alphabet (all 256 are in the vocab, so any text encodes, and
``decode(encode(text)) == text``); merges learnt on the training split join frequent byte
sequences into tokens. The pipeline is GPT-2's: the ``ByteLevel`` pre-tokenizer (its regex cuts
the text into words, a space kept in front of the word it precedes), a ``BPE`` model, the
``ByteLevel`` decoder. rnnlm's special tokens ``xxunk``, ``xxpad``, ``xxbos`` hold ids 0..2, so
code built on ``Vocab`` works unchanged; encoding never produces them (every byte has its
token), except the literal text "xxbos" where merges learnt it as one token: a special token
is written out as its own text, so decoding stays exact.

Speed. Through the library alone, encoding is slow (the pre-tokenizer and the per-byte
alignments it keeps cost most; benchmarks/README.md, "Data preparation"). So text is cut into
*segments*, a run of whitespace and the run of other characters after it (" word,",
"\\n\\nThe"): the pre-tokenizer's regex never joins the characters on the two sides of such a
cut, and it looks at no character before where it starts, so the encoding of a text is the
concatenation of its segments' encodings. Each distinct segment is encoded once by the library's
batch encoder and remembered; the segments of a block of text are found, hashed and looked up
with numpy (a hash is only a shortcut: every segment is compared character by character with the
one it was matched to, and a block where two differ goes through the library whole).

Training. The library's trainer counts words through the same slow pre-tokenizer, so rnnlm
counts them itself: the distinct segments of the text (Python's regex and a ``Counter``), each
pre-tokenized once by the library, give every word its count; the trainer then reads the words,
each repeated as often as it occurs, split at spaces (``WhitespaceSplit``: a byte-level word
holds no space), which counts the same words and learns the same merges in a fraction of the
CPU time (benchmarks/README.md, "Data preparation"). It
learns from the first ``TRAIN_CHARS`` characters of the training split (all of a split shorter
than that).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from rnnlm.atomic import write_text
from rnnlm.config import BPE_MAX_VOCAB, BPE_MIN_VOCAB
from rnnlm.data.streaming import ByteStream
from rnnlm.data.vocab import SPECIALS, Vocab
from rnnlm.errors import RnnlmError, invalid, shown
from rnnlm.reading import parse_json, read_file

if TYPE_CHECKING:  # the library is imported where it is used (start-up time)
    from tokenizers import Tokenizer
    from tokenizers.pre_tokenizers import PreTokenizer

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_LIMIT = 64 << 20  # bytes of tokenizer.json; 65,536 tokens and their merges take a few MB
TRAIN_CHARS = 1 << 23  # characters of the training split the trainer learns from
BLOCK = 1 << 18  # characters encoded at a time (numpy's temporaries take about 60 bytes a character)
MAX_CARRY = 1 << 22  # characters without a place to cut before a piece is cut anyway
CACHE_SEGMENTS = 1 << 18  # distinct segments remembered; then the memory starts afresh
HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2**64


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to the printable character that stands for it in the vocab:
    printable Latin-1 bytes stand for themselves, the others for characters from U+0100 on."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(kept)
    extra = 0
    for b in range(256):
        if b not in kept:
            kept.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(kept, chars)}


BYTE_CHARS = bytes_to_unicode()
CHAR_BYTES = {c: b for b, c in BYTE_CHARS.items()}
# Whitespace as the pre-tokenizer's regex (Rust's \s, Unicode's White_Space) sees it: Python's
# str.isspace() and \s also take the separators U+001C..U+001F, which the library's regex joins
# with the punctuation around them.
SPACES = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
SPACE, NOT_SPACE = f"[{SPACES}]", f"[^{SPACES}]"
SPACE_CHARS = frozenset(c for c in map(chr, range(0x3001)) if re.fullmatch(SPACE, c))
WHITESPACE_TABLE = np.array([chr(c) in SPACE_CHARS for c in range(0x3002)])  # U+3000 is the last space
SAFE_CUT = re.compile(f"(?<={NOT_SPACE}){SPACE}")  # a cut before it is safe (see the module doc)
SEGMENT = re.compile(f"{SPACE}*{NOT_SPACE}+|{SPACE}+")  # a run of whitespace and the other characters after it
WORDS_A_STRING = 1 << 16  # words handed to the trainer in one string


def is_space(codes: np.ndarray) -> np.ndarray:
    return np.take(WHITESPACE_TABLE, codes, mode="clip")


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def last_safe_cut(text: str, limit: int) -> int:
    """The last place at most ``limit`` where the text may be cut (0: none): a whitespace
    character with another character before it."""
    at = limit
    while True:
        at = max(text.rfind(" ", 0, at + 1), text.rfind("\n", 0, at + 1))
        if at <= 0:
            break
        if text[at - 1] not in SPACE_CHARS:
            return at
        while at > 0 and text[at - 1] in SPACE_CHARS:
            at -= 1
    found = 0
    for m in SAFE_CUT.finditer(text, 0, limit + 1):  # other whitespace (tabs, NBSP ...): rare
        found = m.start()
    return found


def next_safe_cut(text: str, start: int) -> int:
    """The first place at or after ``start`` where the text may be cut (0: none)."""
    m = SAFE_CUT.search(text, max(start, 1) - 1) if text else None
    while m is not None and m.start() < start:
        m = SAFE_CUT.search(text, m.start() + 1)
    return m.start() if m else 0


def safe_pieces(pieces: Iterable[tuple[Any, bool, str]], block: int = BLOCK) -> Iterator[tuple[Any, bool, str]]:
    """Text pieces ``(label, starts_document, text)`` (the label, a split's name, is passed
    on), cut again where the BPE pre-tokenizer must split anyway, none much longer than
    ``block``: encoding or counting them one by one is then the same as doing it to each whole
    document. Only a run of ``MAX_CARRY`` characters without a place to cut is cut where the
    limit falls."""
    carry, label, first = "", None, True
    for key, starts, text in pieces:
        if starts and carry:
            yield label, first, carry
            carry = ""
        if starts:
            label, first = key, True
        carry += text
        while len(carry) > block:
            cut = last_safe_cut(carry, block) or next_safe_cut(carry, block)
            if not cut:
                if len(carry) < MAX_CARRY:
                    break
                cut = block
            yield label, first, carry[:cut]
            carry, first = carry[cut:], False
    if carry:
        yield label, first, carry


def first_characters(pieces: Iterable[str], limit: int) -> Iterator[str]:
    """The pieces from ``safe_pieces`` up to the first place to cut at or after ``limit``
    characters: the same text however the pieces were cut."""
    seen = 0
    for piece in pieces:
        if seen >= limit:
            return
        if seen + len(piece) > limit:
            cut = next_safe_cut(piece, limit - seen)
            if cut:
                yield piece[:cut]
                return
        yield piece
        seen += len(piece)


def new_library_tokenizer() -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    return hf


def train_bpe(documents: Iterable[tuple[bool, str]], vocab_size: int, min_freq: int = 1,
              lower: bool = False) -> "BpeTokenizer":
    """Learn merges from the first ``TRAIN_CHARS`` characters of ``documents`` (text pieces, each
    ``(starts_document, text)``, of the training split only) until the vocab holds ``vocab_size``
    tokens, or no pair of tokens occurs ``min_freq`` times any more."""
    from tokenizers import pre_tokenizers, trainers

    if not BPE_MIN_VOCAB <= vocab_size <= BPE_MAX_VOCAB:
        raise invalid("vocab_size", f"must be in {BPE_MIN_VOCAB}..{BPE_MAX_VOCAB} (got {vocab_size})")
    hf = new_library_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = first_characters((t for _, _, t in safe_pieces((None, *doc) for doc in documents)), TRAIN_CHARS)
    words = count_words((piece.lower() for piece in text) if lower else text, hf.pre_tokenizer)
    byte_level, hf.pre_tokenizer = hf.pre_tokenizer, pre_tokenizers.WhitespaceSplit()
    hf.train_from_iterator(repeated(words), trainer)
    hf.pre_tokenizer = byte_level
    return BpeTokenizer(hf, lower)


def count_words(pieces: Iterable[str], pre_tokenizer: PreTokenizer) -> Counter[str]:
    """How often each byte-level word of the pieces occurs: each distinct segment goes through
    the library's ``pre_tokenizer`` once (its words do not depend on the text around it)."""
    segments: Counter[str] = Counter()
    for piece in pieces:
        segments.update(SEGMENT.findall(piece))
    words: Counter[str] = Counter()
    for segment, count in segments.items():
        for word, _ in pre_tokenizer.pre_tokenize_str(segment):
            words[word] += count
    return words


def repeated(words: Counter[str]) -> Iterator[str]:
    """The words, each as often as it occurs, in strings of about ``WORDS_A_STRING`` words."""
    batch: list[str] = []
    for word, count in words.items():
        batch.extend([word] * count)
        if len(batch) >= WORDS_A_STRING:
            yield " ".join(batch)
            batch = []
    if batch:
        yield " ".join(batch)


class Flat:
    """Variable-length rows in one growing array: row ``k`` is ``values[start[k]:start[k] + length[k]]``."""

    def __init__(self, dtype: np.dtype):
        self.values = np.zeros(1 << 16, dtype=dtype)
        self.start = np.zeros(1 << 12, dtype=np.int64)
        self.length = np.zeros(1 << 12, dtype=np.int64)
        self.rows = self.used = 0

    def append(self, values: np.ndarray, lengths: np.ndarray) -> None:
        while self.used + len(values) > len(self.values):
            self.values = np.concatenate([self.values, np.zeros_like(self.values)])
        while self.rows + len(lengths) > len(self.start):
            self.start, self.length = (np.concatenate([a, np.zeros_like(a)]) for a in (self.start, self.length))
        rows = slice(self.rows, self.rows + len(lengths))
        self.length[rows] = lengths
        self.start[rows] = self.used + np.cumsum(lengths) - lengths
        self.values[self.used : self.used + len(values)] = values
        self.used += len(values)
        self.rows += len(lengths)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The rows ``rows`` one after the other."""
        lengths = self.length[rows]
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        return self.values[np.repeat(self.start[rows] - (ends - lengths), lengths) + np.arange(total)]


class SegmentCache:
    """The segments seen so far: each one's hash, its code points and its token ids."""

    def __init__(self, dtype: np.dtype):
        self.keys = np.zeros(0, dtype=np.uint64)  # sorted hashes
        self.rows = np.zeros(0, dtype=np.int64)  # the row of each
        self.codes = Flat(np.dtype(np.uint32))
        self.ids = Flat(dtype)

    def __len__(self) -> int:
        return len(self.keys)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """The row of each hash, -1 where there is none."""
        if not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.rows[at], -1)

    def add(self, keys: np.ndarray, codes: np.ndarray, lengths: np.ndarray, ids: np.ndarray,
            counts: np.ndarray) -> None:
        """New segments: ``keys`` sorted, not yet in the cache; their code points, ids and how many
        of each belong to each segment."""
        at = np.searchsorted(self.keys, keys)
        self.rows = np.insert(self.rows, at, np.arange(len(self.keys), len(self.keys) + len(keys)))
        self.keys = np.insert(self.keys, at, keys)
        self.codes.append(codes, lengths)
        self.ids.append(ids.astype(self.ids.values.dtype), counts)


class BpeTokenizer:
    level = "bpe"
    adds_bos = False  # and documents: as the other levels (rnnlm.data.tokenizers.frame_documents)
    documents = False

    def __init__(self, hf, lower: bool = False):
        self.hf = hf
        self.hf.encode_special_tokens = True  # "xxbos" in a text is text (the flag is not kept in the JSON)
        self.lower = lower
        size = hf.get_vocab_size(with_added_tokens=True)
        self.vocab = Vocab([hf.id_to_token(i) for i in range(size)])
        self.token_bytes = [s.encode("utf-8") if s in SPECIALS else bytes(CHAR_BYTES[c] for c in s)
                            for s in self.vocab.itos]
        self.cache = SegmentCache(self.vocab.dtype)
        self.cache_lock = threading.Lock()  # a server encodes prompts and scored texts on two threads

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BpeTokenizer) and self.lower == other.lower and self.to_json() == other.to_json()

    def to_json(self) -> str:
        return self.hf.to_str()

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, self.to_json())

    def normalize(self, text: str) -> str:
        return text.lower() if self.lower else text

    def encode(self, text: str, vocab: Vocab | None = None) -> np.ndarray:
        """Token ids of ``text`` (``vocab``, accepted as the other levels take it, must be this
        tokenizer's own). The same ids as the library's own ``encode``, found faster."""
        text = self.normalize(text)
        with self.cache_lock:
            parts = [self.encode_segments(piece) for _, _, piece in safe_pieces([(None, True, text)])]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.vocab.dtype)

    def library_encode(self, text: str) -> np.ndarray:
        return np.array(self.hf.encode(text).ids, dtype=self.vocab.dtype)

    def library_encode_words(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of each of ``words``, encoded alone, one after the other, and how many each has:
        one call of the library, as pre-tokenized words (each still goes through the pre-tokenizer)."""
        encoding = self.hf.encode(words, is_pretokenized=True)
        counts = np.bincount(np.array(encoding.word_ids, dtype=np.int64), minlength=len(words))
        return np.array(encoding.ids, dtype=np.int64), counts

    def encode_segments(self, text: str) -> np.ndarray:
        """Ids of ``text`` (at most ``MAX_CARRY`` characters), segment by segment through the cache."""
        if len(text) > BLOCK:
            return self.library_encode(text)
        codes = code_points(text)
        n = len(codes)
        space = is_space(codes)
        starts = np.flatnonzero(np.concatenate([[True], space[1:] & ~space[:-1]]))  # (S,) where segments start
        lengths = np.diff(np.append(starts, n))
        powers, inverse_powers = hash_powers()
        sums = np.add.reduceat(codes.astype(np.uint64) * powers[:n], starts) * inverse_powers[starts]
        keys = sums ^ (lengths.astype(np.uint64) * np.uint64(0xFF51AFD7ED558CCD))  # (S,)
        distinct, inverse = np.unique(keys, return_inverse=True)  # sorted queries search the cache faster
        if len(self.cache) + len(distinct) > CACHE_SEGMENTS:
            self.cache = SegmentCache(self.vocab.dtype)
        slots = self.cache.rows_of(distinct)[inverse]
        missing = np.flatnonzero(slots < 0)
        if len(missing):
            new, first = np.unique(keys[missing], return_index=True)
            at = missing[first]
            words = [text[s : s + length] for s, length in zip(starts[at].tolist(), lengths[at].tolist())]
            total = int(lengths[at].sum())
            word_codes = codes[np.repeat(starts[at], lengths[at]) + np.arange(total)
                               - np.repeat(np.cumsum(lengths[at]) - lengths[at], lengths[at])]
            self.cache.add(new, word_codes, lengths[at], *self.library_encode_words(words))
            slots[missing] = self.cache.rows_of(keys[missing])
        if not (np.array_equal(self.cache.codes.length[slots], lengths)
                and np.array_equal(self.cache.codes.gather(slots), codes)):
            return self.library_encode(text)  # two segments, one hash
        return self.cache.ids.gather(slots)

    def piece(self, token: str) -> str:
        """The text one token stands for alone: a token that holds part of a multi-byte
        character shows U+FFFD for it (``stream_decoder`` waits for the whole character)."""
        return self.token_bytes[self.vocab.stoi[token]].decode("utf-8", "replace")

    def decode(self, ids: Iterable[int], vocab: Vocab | None = None) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def join(self, pieces: list[str]) -> str:
        return "".join(pieces)

    def stream_decoder(self, vocab: Vocab | None = None) -> ByteStream:
        return ByteStream(self.token_bytes)


@functools.cache
def hash_powers() -> tuple[np.ndarray, np.ndarray]:
    """``HASH_BASE ** i`` and its inverse modulo 2**64 for i in 0..BLOCK: the hash of a segment
    is the sum of its code points times the powers from its start (numpy's uint64 wraps)."""
    base = int(HASH_BASE)
    inverse = base
    for _ in range(6):  # Newton's iteration for the inverse of an odd number: each step doubles the bits
        inverse = inverse * (2 - base * inverse) % (1 << 64)
    out = []
    for b in (base, inverse):
        powers = np.ones(BLOCK + 1, dtype=np.uint64)
        powers[1:] = np.cumprod(np.full(BLOCK, b, dtype=np.uint64))
        out.append(powers)
    return out[0], out[1]


# Reading tokenizer.json from a stranger.

EXPECTED = {"pre_tokenizer": "ByteLevel", "decoder": "ByteLevel"}


def tokenizer_error(path: Path, why: str) -> RnnlmError:
    return RnnlmError(f"{path}: {why}")


def check_tokenizer_json(obj: Any, path: Path, itos: list[str]) -> None:
    """The structure rnnlm writes: a byte-level BPE whose vocab is ``itos`` (vocab.json's tokens,
    as many as config.json and the weights say), specials first, every token made of byte
    characters, no dropout (encoding would be random)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise tokenizer_error(path, "not a tokenizers JSON file (no model)")
    model = obj["model"]
    if model.get("type") != "BPE":
        raise tokenizer_error(path, f"model type {shown(model.get('type'))}, rnnlm reads byte-level BPE only")
    for part, kind in EXPECTED.items():
        value = obj.get(part)
        if not isinstance(value, dict) or value.get("type") != kind:
            found = value.get("type") if isinstance(value, dict) else value
            raise tokenizer_error(path, f"{part} is {shown(found)}, not {kind}")
    if obj.get("normalizer") is not None or obj.get("post_processor") is not None:
        raise tokenizer_error(path, "has a normalizer or post-processor; rnnlm writes neither")
    if model.get("dropout") is not None or model.get("byte_fallback") not in (None, False):
        raise tokenizer_error(path, "BPE dropout or byte fallback is set; rnnlm writes neither")
    vocab, merges = model.get("vocab"), model.get("merges")
    if not isinstance(vocab, dict) or not isinstance(merges, list):
        raise tokenizer_error(path, "the model's vocab or merges are missing")
    if len(vocab) != len(itos):
        raise tokenizer_error(path, f"{len(vocab):,} tokens, but config.json, vocab.json and the weights have "
                                    f"{len(itos):,}")
    if sorted(vocab.items(), key=lambda kv: kv[1] if isinstance(kv[1], int) else -1) != [
            (t, i) for i, t in enumerate(itos)]:
        raise tokenizer_error(path, "its vocab differs from vocab.json")
    odd = next((t for t in itos[len(SPECIALS):] if not t or any(c not in CHAR_BYTES for c in t)), None)
    if odd is not None:
        raise tokenizer_error(path, f"token {shown(odd)} is not made of byte-level characters")
    if not set(BYTE_CHARS.values()) <= set(itos):
        raise tokenizer_error(path, "its vocab lacks some of the 256 bytes; not every text could be encoded")
    added = obj.get("added_tokens")
    if not isinstance(added, list) or [(a.get("id"), a.get("content")) if isinstance(a, dict) else a
                                       for a in added] != list(enumerate(SPECIALS)):
        raise tokenizer_error(path, f"its added tokens must be exactly {', '.join(SPECIALS)} at ids 0..2")


def load_bpe(path: str | os.PathLike, vocab: Vocab, lower: bool) -> BpeTokenizer:
    """``tokenizer.json`` of a run or prepared folder: a regular file of at most
    ``TOKENIZER_LIMIT`` bytes, JSON of the structure ``check_tokenizer_json`` wants, matching
    ``vocab``; only then handed to the library's loader."""
    from tokenizers import Tokenizer

    path = Path(path)
    text = read_file(path, TOKENIZER_LIMIT, "tokenizer file",
                     missing=f"no {TOKENIZER_FILE} (a bpe-level run needs one)")
    check_tokenizer_json(parse_json(text, str(path), "tokenizer file"), path, vocab.itos)
    try:
        hf = Tokenizer.from_str(text.decode("utf-8"))
    except Exception as e:  # the library's own refusal (a merge of tokens not in the vocab ...)
        raise tokenizer_error(path, f"damaged tokenizer file ({str(e).splitlines()[0][:200] if str(e) else e})")
    tokenizer = BpeTokenizer(hf, lower)
    if tokenizer.vocab != vocab:
        raise tokenizer_error(path, "the library reads a vocab that differs from vocab.json")
    return tokenizer

