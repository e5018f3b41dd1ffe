"""Fingerprints of windows of integer sequences, and a table that finds them again, in numpy.

The fingerprint of the window of ``length`` symbols at ``i`` is the polynomial
``M * sum_t s[i + t] * B**t`` modulo 2**64, read off prefix sums: with
``P[i] = M * sum_{j<i} s[j] * B**j`` it is ``(P[i + length] - P[i]) * B**-i``. (``M`` mixes
the bits, so that the top bits of even a short window's fingerprint, which tables use as its
place, vary with every symbol.) numpy's uint64 arithmetic wraps, which is the modulus,
and an odd ``B`` has an inverse modulo 2**64, so every window of an array costs a few vectorised
passes whatever its length. Fingerprints are not proof: equal windows always have equal
fingerprints, but two different windows may share one, so every match they suggest is confirmed
on the symbols themselves.
"""

from __future__ import annotations

import numpy as np

MOD = 1 << 64
BASES = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
         0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)  # odd; the next one is tried after a collision


class HashCollision(Exception):
    """Two different windows of the text share a fingerprint: start again with another base."""


MIX = 0x9FB21C651E98DF25  # M


class Powers:
    """``M * B**i`` and ``B**-i`` modulo 2**64 for i = 0, 1, ..., grown on demand."""

    def __init__(self, base: int):
        self.base = base
        self.up = self._series(base, 1, MIX)
        self.down = self._series(pow(base, -1, MOD), 1)

    def ensure(self, n: int) -> None:
        if len(self.up) >= n:
            return
        n = max(n, 2 * len(self.up))
        self.up = self._series(self.base, n, MIX)
        self.down = self._series(pow(self.base, -1, MOD), n)

    @staticmethod
    def _series(factor: int, n: int, first: int = 1) -> np.ndarray:
        """``first * factor**i`` for i < n, modulo 2**64."""
        out = np.full(n, factor, dtype=np.uint64)
        out[0] = first
        return np.cumprod(out, out=out)  # wraps modulo 2**64

    def prefix(self, symbols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``P`` (n + 1,) of ``symbols`` (n,), any unsigned or non-negative integer type (``out``:
        room for it, of at least n + 1 uint64, else a new array)."""
        n = len(symbols)
        self.ensure(n + 1)
        sums = np.empty(n + 1, dtype=np.uint64) if out is None else out[: n + 1]
        sums[0] = 0
        if n:
            np.multiply(symbols.astype(np.uint64, copy=False) if symbols.dtype.kind == "i" else symbols,
                        self.up[:n], out=sums[1:])
            np.cumsum(sums[1:], out=sums[1:])
        return sums

    def windows(self, sums: np.ndarray, length: int, starts: np.ndarray | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
        """Fingerprints of the windows of ``length`` at ``starts`` (default: every window, into
        ``out`` when given) of the array whose prefix sums are ``sums``."""
        if starts is None:
            count = max(len(sums) - length, 0)
            hashes = np.empty(count, dtype=np.uint64) if out is None else out[:count]
            np.subtract(sums[length:], sums[:count], out=hashes)
            return np.multiply(hashes, self.down[:count], out=hashes)
        return (sums[starts + length] - sums[starts]) * self.down[starts]

    def spans(self, sums: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Fingerprints of the windows ``[starts, ends)``, of any lengths."""
        return (sums[ends] - sums[starts]) * self.down[starts]


class Scratch:
    """Arrays reused from one block to the next: a fresh array of a few MB for every numpy step
    costs more in page faults than the step itself."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, n: int, dtype: type | np.dtype) -> np.ndarray:
        """``n`` elements of the array ``name`` of ``dtype``, as they were left."""
        key = (name, np.dtype(dtype))
        array = self.arrays.get(key)
        if array is None or len(array) < n:
            array = self.arrays[key] = np.empty(max(n, 2 * len(array) if array is not None else n), dtype=dtype)
        return array[:n]


MARK_BITS = 26  # the largest presence table: 64 MB


class HashIndex:
    """uint64 keys, found again by value: ``find(q)`` gives each query's index in ``keys`` (of
    one of them, for keys given more than once) or -1. Open addressing with linear probing in a
    table at most a quarter full, so a query usually costs one look; built and searched a whole
    array at a time. ``hits`` screens a long array first with a table of bytes 16 times larger
    (``mark``: some key has its home there), so most absent queries cost one byte."""

    def __init__(self, keys: np.ndarray):
        bits = max(10, int(len(keys) * 4 - 1).bit_length())
        self.size = 1 << bits
        self.shift = np.uint64(64 - bits)
        self.slot = np.full(self.size, -1, dtype=np.int32 if len(keys) < 2**31 else np.int64)
        self.key = np.zeros(self.size, dtype=np.uint64)
        waiting = np.arange(len(keys))
        at = self.home(keys)
        while waiting.size:  # each round, every waiting key takes its slot if it is free, else the next
            free = np.flatnonzero(self.slot[at] < 0)
            self.slot[at[free]] = waiting[free]  # of several keys on one free slot, one wins
            won = np.zeros(len(waiting), dtype=bool)
            won[free] = self.slot[at[free]] == waiting[free]
            self.key[at[won]] = keys[waiting[won]]
            stay = ~won & (self.key[at] != keys[waiting])  # an equal key there already: nothing to add
            waiting, at = waiting[stay], (at[stay] + 1) & (self.size - 1)
        mark_bits = min(bits + 4, MARK_BITS)
        self.mark_shift = np.uint64(64 - mark_bits)
        self.mark = np.zeros(1 << mark_bits, dtype=np.uint8)
        self.mark[(keys >> self.mark_shift).view(np.int64)] = 1

    def home(self, q: np.ndarray) -> np.ndarray:
        """The first slot to look in: the top bits of the key (see ``MIX``)."""
        return (q >> self.shift).view(np.int64)

    def find(self, q: np.ndarray) -> np.ndarray:
        at = self.home(q)
        slot = self.slot[at]
        found = np.where(self.key[at] == q, slot, -1).astype(np.int64)  # most keys are at home
        live = np.flatnonzero((found < 0) & (slot >= 0))  # not there, but the slot is taken: look further
        at = at[live]
        while live.size:
            at = (at + 1) & (self.size - 1)
            slot = self.slot[at]
            occupied = slot >= 0
            live, at, slot = live[occupied], at[occupied], slot[occupied]
            hit = self.key[at] == q[live]
            found[live[hit]] = slot[hit]
            live, at = live[~hit], at[~hit]
        return found

    def marked(self, q: np.ndarray, scratch: Scratch) -> np.ndarray:
        """The positions in the long array ``q`` that may hold a key, ascending: all that do,
        and a few more (about one absent query in 64)."""
        at = np.right_shift(q, self.mark_shift, out=scratch.get("home", len(q), np.uint64)).view(np.int64)
        return np.flatnonzero(np.take(self.mark, at, out=scratch.get("marks", len(q), np.uint8)))

    def hits(self, q: np.ndarray, scratch: Scratch) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, indices)``: where in the long array ``q`` a key is, ascending, and which."""
        marked = self.marked(q, scratch)
        found = self.find(q[marked])
        present = found >= 0
        return marked[present], found[present]


class Windows:
    """The distinct windows of one length of a text: their fingerprints in a ``HashIndex``, one
    position of each (``first``) and how often each occurs (``counts``). ``exact``: checked that
    no two different windows share a fingerprint (else ``HashCollision``), so an index names
    one window's content; else two different windows may hide behind one fingerprint, and a
    match with the one at ``first`` proves nothing about the other."""

    def __init__(self, units: np.ndarray, sums: np.ndarray, powers: Powers, length: int, exact: bool = False):
        hashes = powers.windows(sums, length)
        keys, first, inverse, counts = np.unique(hashes, return_index=True, return_inverse=True, return_counts=True)
        if exact:
            check_groups(units, length, first[inverse])
        self.length = length
        self.keys = keys
        self.index = HashIndex(keys)
        self.first = first
        self.counts = counts

    def __len__(self) -> int:
        return len(self.first)


CHECK_CELLS = 1 << 22  # symbols compared at a time


def check_groups(units: np.ndarray, length: int, representative: np.ndarray) -> None:
    """Every window of ``units`` equals the window its fingerprint group stands for."""
    others = np.flatnonzero(representative != np.arange(len(representative)))
    step = max(1, CHECK_CELLS // length)
    offsets = np.arange(length)
    for at in range(0, len(others), step):
        starts = others[at : at + step]
        if not np.array_equal(units[starts[:, None] + offsets], units[representative[starts][:, None] + offsets]):
            raise HashCollision
