"""Word tokens found, counted and looked up with numpy, for large corpora: the tokens of
``tokenizers.WORD_RE`` (``\\w+|[^\\w\\s]``, Python's Unicode semantics) without a Python object
per token.

A piece of text is scanned as UTF-8 bytes. Every character has one class: space (``\\s``), word
(``\\w``) or other; a token is a run of word characters or a single other character. ASCII bytes
are classified by a 256-byte table (``bytes.translate``), the characters beyond ASCII by a table
of code points filled from ``re`` itself as they are met, so the classes are ``re``'s by
construction.

A token of at most 16 bytes is its own key: its bytes, zero-padded, as two 64-bit integers
(``k1`` the first 8, ``k2`` the next 8; no token but NUL itself contains a zero byte, so the key
is exact, never a hash). ``TokenTable`` maps keys to dense ids with a vectorised open-addressing
hash table that compares whole keys. The rare longer tokens are numbered in a Python dict and
stand in the table under a key no text gives (see ``WordIndex``).

``WordIndex`` numbers the distinct tokens of many pieces; ``WordCounter`` counts them, and
``WordEncoder`` maps them to a vocab's ids, with the counts and ids of ``WordTokenizer.count``
and ``Vocab.encode_tokens`` (tests/test_wordscan.py compares them on every code point and on
text chosen to break them). benchmarks/prepare_speed.py measures it against the regular
expression.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from rnnlm.data.vocab import Vocab

SPACE, WORD, OTHER, OTHER_CONT = 0, 1, 2, 3  # byte classes; OTHER_CONT: a later byte of an OTHER character
KEY_BYTES = 16
WORD_CHAR, SPACE_CHAR = re.compile(r"\w"), re.compile(r"\s")
UNKNOWN = 255
NON_ASCII = 4  # the class translate gives every byte >= 0x80, resolved per character


def char_classes(points: np.ndarray) -> np.ndarray:
    """The class of each code point, as ``re`` sees it: every word character becomes ``w`` and
    then every space `` `` (neither is the other's, so nothing is marked twice)."""
    text = points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
    marked = SPACE_CHAR.sub(" ", WORD_CHAR.sub("w", text))
    codes = np.frombuffer(marked.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return np.where(codes == ord("w"), WORD, np.where(codes == ord(" "), SPACE, OTHER)).astype(np.uint8)


ASCII_CLASSES = bytes(char_classes(np.arange(128)).tolist() + [NON_ASCII] * 128)
CODE_POINT_CLASSES = np.full(0x110000, UNKNOWN, dtype=np.uint8)  # filled as characters are met

LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)  # mask of the first n bytes
GOLDEN, MIX = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)


def classify_non_ascii(classes: np.ndarray, data: np.ndarray) -> None:
    """Give every byte of each character beyond ASCII its character's class, in place (the bytes
    after the first of an OTHER character: OTHER_CONT)."""
    lead = np.flatnonzero(data >= 0xC0)
    last = len(data) - 1
    b0, b1, b2, b3 = (data[np.minimum(lead + i, last)].astype(np.int32) for i in range(4))
    size = 2 + (b0 >= 0xE0) + (b0 >= 0xF0)
    points = np.where(size == 2, ((b0 & 0x1F) << 6) | (b1 & 0x3F),
                      np.where(size == 3, ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F),
                               ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F)))
    found = CODE_POINT_CLASSES[points]
    if (found == UNKNOWN).any():
        new = points[found == UNKNOWN]  # repeats and all: np.unique would cost more than classifying them twice
        CODE_POINT_CLASSES[new] = char_classes(new)
        found = CODE_POINT_CLASSES[points]
    later = np.where(found == OTHER, OTHER_CONT, found).astype(np.uint8)
    classes[lead] = found
    classes[lead + 1] = later
    three, four = size >= 3, size == 4
    classes[lead[three] + 2] = later[three]
    classes[lead[four] + 3] = later[four]


def token_bounds(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths of the tokens, from the byte classes with a SPACE before and after."""
    word, other = classes == WORD, classes >= OTHER
    before, after = word[:-1], word[1:]  # at boundary j (before byte j): is byte j - 1 a word byte, is byte j
    starts, ends = after > before, before > after  # bools: a > b is a and not b
    cont = classes[1:] == OTHER_CONT
    starts |= other[1:] > cont
    ends |= other[:-1] > cont
    begin = np.flatnonzero(starts)
    return begin, np.flatnonzero(ends) - begin


class Scan:
    """The tokens of one piece of text: byte offsets, lengths and keys, in order."""

    def __init__(self, text: str):
        self.data = text.encode("utf-8", "surrogatepass")
        size = len(self.data)
        raw = np.frombuffer(self.data, dtype=np.uint8)
        classes = np.zeros(size + 2, dtype=np.uint8)  # a space before and after the text
        classes[1:-1] = np.frombuffer(self.data.translate(ASCII_CLASSES), dtype=np.uint8)
        if not text.isascii():
            classify_non_ascii(classes[1:-1], raw)
        self.starts, self.lengths = token_bounds(classes)
        padded = np.zeros(size + KEY_BYTES + 8, dtype=np.uint8)
        padded[:size] = raw
        windows = np.ndarray((size + KEY_BYTES,), dtype="<u8", buffer=padded, strides=(1,))  # 8 bytes at each offset
        # np.take copies the strided windows whole first (faster for every token), indexing does not (for a few)
        self.k1 = np.take(windows, self.starts) & np.take(LOW_BYTES, np.minimum(self.lengths, 8))
        self.k2 = np.zeros_like(self.k1)
        longer = np.flatnonzero(self.lengths > 8)
        if len(longer):
            tail = windows[self.starts[longer] + 8]
            self.k2[longer] = tail & np.take(LOW_BYTES, np.minimum(self.lengths[longer] - 8, 8))
        self.long = np.flatnonzero(self.lengths > KEY_BYTES) if len(longer) and self.lengths.max() > KEY_BYTES else longer[:0]

    def __len__(self) -> int:
        return len(self.starts)

    def long_tokens(self) -> list[str]:
        """The tokens too long for a key, as strings, in order."""
        data = self.data
        return [data[s : s + n].decode("utf-8", "surrogatepass")
                for s, n in zip(self.starts[self.long].tolist(), self.lengths[self.long].tolist())]


def key_hash(k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
    return (k1 ^ (k2 * MIX)) * GOLDEN


def key_text(k1: int, k2: int) -> str:
    """The token whose key is ``(k1, k2)``."""
    raw = (k1.to_bytes(8, "little") + k2.to_bytes(8, "little")).rstrip(b"\0")
    return raw.decode("utf-8", "surrogatepass") if raw else "\0"


EMPTY = np.uint64(2**64 - 1)  # k1 of an empty slot: no token's first 8 bytes are all 0xFF (never in UTF-8)


class TokenTable:
    """Exact map from token keys to dense ids 0, 1, 2 ...: an open-addressing hash table with linear
    probing that compares whole keys, each probe done for a whole array of keys at once."""

    def __init__(self, bits: int = 12):
        self.k1 = np.zeros(1 << 10, dtype=np.uint64)  # the key of each dense id (the first ``size``)
        self.k2 = np.zeros(1 << 10, dtype=np.uint64)
        self.size = 0
        self._allocate(bits)

    def __len__(self) -> int:
        return self.size

    def _allocate(self, bits: int) -> None:
        self.bits = bits
        self.slot_keys = np.full((1 << bits, 2), EMPTY, dtype=np.uint64)  # k1, k2 of each slot, side by side
        self.slot_pairs = self.slot_keys.view(np.complex128)[:, 0]  # the same, one 16-byte item a slot (never compared as numbers)
        self.slot_ids = np.full(1 << bits, -1, dtype=np.int32)

    def _probe(self, k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each key, the slot that holds it or the empty slot where its probe ends, and that
        slot's dense id (-1: empty)."""
        slot = (key_hash(k1, k2) >> np.uint64(64 - self.bits)).view(np.intp)
        mask = (1 << self.bits) - 1
        found = np.take(self.slot_pairs, slot).view(np.uint64)  # k1 and k2 of each slot, interleaved
        todo = np.flatnonzero(((found[0::2] != k1) | (found[1::2] != k2)) & (found[0::2] != EMPTY))
        while len(todo):
            at = (slot[todo] + 1) & mask
            slot[todo] = at
            found = np.take(self.slot_pairs, at).view(np.uint64)
            todo = todo[((found[0::2] != k1[todo]) | (found[1::2] != k2[todo])) & (found[0::2] != EMPTY)]
        return slot, np.take(self.slot_ids, slot)

    def lookup(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """The dense id of each key; -1 where it is not in the table."""
        return self._probe(k1, k2)[1]

    def add(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """The dense id of each key; keys not yet in the table are added."""
        slot, ids = self._probe(k1, k2)
        new = np.flatnonzero(ids < 0)
        while len(new):
            claimed, first = np.unique(slot[new], return_index=True)  # one key per empty slot
            while 2 * (self.size + len(claimed)) > len(self.slot_ids):  # keep half the slots empty
                self._grow(self.size + len(claimed))
                slot[new] = self._probe(k1[new], k2[new])[0]
                claimed, first = np.unique(slot[new], return_index=True)
            self._append(k1[new[first]], k2[new[first]])
            self._fill(claimed, np.arange(self.size - len(claimed), self.size))
            slot[new], ids[new] = self._probe(k1[new], k2[new])
            new = new[ids[new] < 0]
        return ids

    def _append(self, k1: np.ndarray, k2: np.ndarray) -> None:
        size, end = self.size, self.size + len(k1)
        if end > len(self.k1):
            grown = max(end, 2 * len(self.k1))
            self.k1, self.k2 = (np.concatenate([a, np.zeros(grown - len(a), a.dtype)]) for a in (self.k1, self.k2))
        self.k1[size:end], self.k2[size:end] = k1, k2
        self.size = end

    def _fill(self, slots: np.ndarray, ids: np.ndarray) -> None:
        self.slot_ids[slots] = ids
        self.slot_keys[slots, 0], self.slot_keys[slots, 1] = self.k1[ids], self.k2[ids]

    def _grow(self, needed: int) -> None:
        """Rebuild with at least twice ``needed`` slots; dense ids stay."""
        bits = self.bits
        while (1 << bits) < 2 * needed:
            bits += 1
        self._allocate(bits)
        pending = np.arange(self.size)
        while len(pending):  # distinct keys, none in the table: one placed per contested slot each round
            claimed, first = np.unique(self._probe(self.k1[pending], self.k2[pending])[0], return_index=True)
            self._fill(claimed, pending[first])
            pending = np.delete(pending, first)

    def tokens(self) -> list[str]:
        """Every token in the table, by dense id."""
        return [key_text(a, b) for a, b in zip(self.k1[: self.size].tolist(), self.k2[: self.size].tolist())]


LONG, ABSENT = np.uint64(0), np.uint64(2**64 - 1)  # k1 of a long token's stand-in key; k2 of a missing one


class WordIndex:
    """Dense ids 0, 1, 2 ... for the word tokens of many pieces of text, a new id for each token
    when it is first met. A token longer than ``KEY_BYTES`` stands in the table as the key
    ``(0, n)``, n its number among the long tokens (no real key starts with a zero byte and has more)."""

    def __init__(self, lower: bool = False):
        self.lower = lower
        self.table = TokenTable()
        self.long_numbers: dict[str, int] = {}
        self.long_tokens: list[str] = []

    def __len__(self) -> int:
        return len(self.table)

    def ids(self, text: str, add: bool = True) -> np.ndarray:
        """The dense id of every token of ``text``, in order (int32); without ``add``, -1 for a new one."""
        scan = Scan(text.lower() if self.lower else text)
        k1, k2 = scan.k1, scan.k2
        if len(scan.long):
            k1[scan.long] = LONG
            k2[scan.long] = [self.long_number(tok, add) for tok in scan.long_tokens()]
        return self.table.add(k1, k2) if add else self.table.lookup(k1, k2)

    def long_number(self, token: str, add: bool) -> int | np.uint64:
        number = self.long_numbers.get(token)
        if number is None:
            if not add:
                return ABSENT
            self.long_tokens.append(token)
            number = self.long_numbers[token] = len(self.long_tokens)
        return number

    def add_tokens(self, tokens: list[str]) -> np.ndarray:
        """Dense ids of ``tokens`` given as strings; -1 for one that no text scans as a token with
        that key (the empty string, and a NUL with other characters: its key is the shorter token's)."""
        firsts, seconds, kept = [], [], []
        for i, tok in enumerate(tokens):
            raw = tok.encode("utf-8", "surrogatepass")
            if len(raw) > KEY_BYTES:
                firsts.append(0)
                seconds.append(int(self.long_number(tok, True)))
            elif raw and (b"\0" not in raw or raw == b"\0"):
                key = raw.ljust(KEY_BYTES, b"\0")
                firsts.append(int.from_bytes(key[:8], "little"))
                seconds.append(int.from_bytes(key[8:], "little"))
            else:
                continue
            kept.append(i)
        ids = np.full(len(tokens), -1, dtype=np.int64)
        ids[kept] = self.table.add(np.array(firsts, dtype=np.uint64), np.array(seconds, dtype=np.uint64))
        return ids

    def tokens(self) -> list[str]:
        """Every token, by dense id."""
        return [self.long_tokens[b - 1] if a == 0 and b else key_text(a, b)
                for a, b in zip(self.table.k1[: len(self)].tolist(), self.table.k2[: len(self)].tolist())]


class WordCounter:
    """Counts of the word tokens of many pieces of text, kept as arrays until ``counts``."""

    FLUSH = 1 << 18  # dense ids gathered before they are counted with one bincount (a few MB)

    def __init__(self, lower: bool = False):
        self.index = WordIndex(lower)
        self.totals = np.zeros(0, dtype=np.int64)
        self.pending: list[np.ndarray] = []
        self.pending_size = 0

    def update(self, text: str) -> None:
        self.count_ids(self.index.ids(text))

    def count_ids(self, ids: np.ndarray) -> None:
        """Count tokens given by their dense ids in ``index``."""
        self.pending.append(ids)
        self.pending_size += len(ids)
        if self.pending_size >= max(self.FLUSH, len(self.index)):
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            counts = np.bincount(np.concatenate(self.pending), minlength=len(self.index))
            counts[: len(self.totals)] += self.totals
            self.totals = counts
            self.pending, self.pending_size = [], 0

    def counts(self) -> Counter:
        self._flush()
        return Counter({tok: n for tok, n in zip(self.index.tokens(), self.totals.tolist()) if n})


class WordEncoder:
    """The ids of a vocab's tokens in many pieces of text; a token outside the vocab is ``xxunk``."""

    def __init__(self, vocab: Vocab, lower: bool = False):
        self.index = WordIndex(lower)
        dense = self.index.add_tokens(vocab.itos)
        self.vocab_ids = np.full(len(self.index) + 1, vocab.unk_id, dtype=vocab.dtype)  # the last: not found
        found = dense >= 0
        self.vocab_ids[dense[found]] = np.flatnonzero(found)

    def __call__(self, text: str) -> np.ndarray:
        return self.vocab_ids[self.index.ids(text, add=False)]
