"""Which windows of a small text occur in a long stream of training symbols, found in one pass.

The text (a sample: a few MB at most) is held whole; the training text streams past in blocks
(see ``Block``) and is never held. Both are arrays of integer symbols (code points, token ids).
For each block:

1. the fingerprint of every window of ``k`` symbols is screened against the text's ``k``-grams
   (``k`` is the smallest n-gram size, or less while the longest match found is shorter than
   that) with a byte table: the hits (every true one, and a few false ones that only cost time)
   are the only places a match can start;
2. a window of ``n >= k`` symbols can only match where ``n - k + 1`` hits follow one another, so
   the n-grams are looked up only there, in a table of those not found yet, and every
   fingerprint match is confirmed on the symbols before it counts (``Block.confirm``);
3. the longest common substring: while the block holds a window of ``best + 1`` symbols that
   occurs in the text (looked for where ``best + 2 - k`` hits follow one another), take the
   first such window, confirm it (``Block.agree``), extend it as far as it goes, and raise
   ``best`` to its length. When no window of ``best + 1`` is left, none longer is (a longer one
   would contain one), so ``best`` is exact for everything read so far;
4. the block's tail is carried into the next block: ``max(n) - 1`` symbols so no n-gram is lost
   at the seam, and more when the block ends inside a run of hits, back to the start of the
   longest suffix that could still be growing into a longer match (at most ``best`` symbols:
   every suffix that is a substring of the text is at most that long).

Memory holds the text, its fingerprint tables and one block plus its carry, whatever the
length of the training text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from rnnlm.inspect.hashing import HashIndex, Powers, Scratch, Windows

CONFIRM_CELLS = 1 << 22  # symbols compared at a time when confirming n-grams


@dataclass
class TextUnits:
    """The text as symbols (``units``, int64), and where each unit is in the text.

    ``spans``: the character offsets ``(starts, ends)`` of each unit (None: unit i is character
    i); ``strings``: the units as strings where symbols alone do not prove equality."""

    units: np.ndarray
    text: str
    spans: tuple[np.ndarray, np.ndarray] | None = None
    strings: list[str] | None = None

    def __len__(self) -> int:
        return len(self.units)

    def characters(self, start: int, length: int) -> tuple[int, int]:
        """Character offsets ``[begin, end)`` of ``length`` units from unit ``start``."""
        if self.spans is None:
            return start, start + length
        return int(self.spans[0][start]), int(self.spans[1][start + length - 1])


@dataclass
class Block:
    """Consecutive training symbols of one document: ``ids`` (N,) from unit ``start`` of it.

    ``first``: the block begins its document (nothing is carried into it). Equal ids here are
    equal text; subclasses whose ids may be equal for different text override ``agree`` and
    ``confirm``."""

    ids: np.ndarray
    document: str
    start: int = 0
    first: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    def agree(self, i: int, text: TextUnits, j: int, length: int) -> int:
        """How many of the ``length`` units from ``i`` here and ``j`` in ``text`` agree before one differs."""
        same = self.ids[i : i + length] == text.units[j : j + length]
        return length if same.all() else int(np.argmin(same))

    def confirm(self, starts: np.ndarray, text: TextUnits, text_starts: np.ndarray, n: int) -> np.ndarray:
        """Whether the window of ``n`` units at each of ``starts`` equals the text's at ``text_starts``."""
        out = np.zeros(len(starts), dtype=bool)
        offsets = np.arange(n)
        step = max(1, CONFIRM_CELLS // n)
        for at in range(0, len(starts), step):
            here = self.ids[starts[at : at + step, None] + offsets]
            there = text.units[text_starts[at : at + step, None] + offsets]
            out[at : at + step] = (here == there).all(axis=1)
        return out

    def where(self, i: int) -> dict[str, Any]:
        """The place of unit ``i`` in its document, for a report."""
        return {"document": self.document, "token": self.start + i}

    def tail(self, count: int) -> "Block":
        """The last ``count`` units, as the start of the next block."""
        cut = len(self.ids) - count
        return Block(self.ids[cut:].copy(), self.document, self.start + cut, False)

    def join(self, after: "Block", scratch: Scratch) -> "Block":
        """This block (a carried tail) followed by the next block of the same document, in
        ``scratch`` (valid until the next join)."""
        return Block(joined(scratch, "ids", self.ids, after.ids), self.document, self.start, self.first)


@dataclass
class Match:
    """The longest text window found so far: ``length`` units at ``text_start`` of the text, at
    ``training`` (a ``Block.where``) in the training text."""

    length: int = 0
    text_start: int = 0
    training: dict[str, Any] = field(default_factory=dict)


class Matcher:
    """The n-grams of one text found so far, and its longest match, fed block by block."""

    def __init__(self, text: TextUnits, ns: tuple[int, ...], powers: Powers, scratch: Scratch):
        self.text, self.ns, self.powers, self.scratch = text, tuple(ns), powers, scratch
        self.m = len(text)
        self.sums = powers.prefix(text.units.view(np.uint64))
        self.grams = {n: Windows(text.units, self.sums, powers, n, exact=True) for n in self.ns if n <= self.m}
        self.found = {n: np.zeros(len(w), dtype=bool) for n, w in self.grams.items()}
        self.pending = {n for n in self.grams}
        self.unfound: dict[int, tuple[HashIndex, np.ndarray]] = {}  # n: a table of the n-grams not found yet
        self.left = {n: len(w) for n, w in self.grams.items()}  # how many are not found
        self.best = Match()
        self.windows: dict[int, Windows] = {}
        self.probe: tuple[int, np.ndarray | None, HashIndex | None] = (0, None, None)  # see first_match
        self.carry = max(self.ns) - 1

    @property
    def done(self) -> bool:
        """Nothing more can be learnt: every n-gram found and the whole text matched."""
        return not self.pending and self.best.length >= self.m

    def shared(self, n: int) -> tuple[int, int]:
        """``(found, total)``: the text's n-grams (counted with repeats) that occur in the training text."""
        if n not in self.grams:
            return 0, 0
        return int(self.grams[n].counts[self.found[n]].sum()), self.m - n + 1

    def window_table(self, length: int) -> Windows:
        """The text's windows of ``length``, built when first needed (a few lengths are kept)."""
        if length in self.grams:
            return self.grams[length]
        if length not in self.windows:
            if len(self.windows) >= 2:
                self.windows.pop(next(iter(self.windows)))
            self.windows[length] = Windows(self.text.units, self.sums, self.powers, length)
        return self.windows[length]

    def filter_length(self) -> int:
        """``k``: the smallest n, or ``best + 1`` while that is smaller (a shorter filter would
        miss the next longest match, a longer one lets through fewer places)."""
        return min(min(self.ns), self.best.length + 1)

    def feed(self, block: Block, sums: np.ndarray) -> None:
        """Look for the text in ``block`` (whose prefix sums are ``sums``); sets ``carry``."""
        self.carry = max(self.ns) - 1
        while True:  # again with a longer filter when the longest match outgrew it (the first blocks only)
            k = self.filter_length()
            hashes = self.powers.windows(sums, k, out=self.scratch.get("windows", len(block), np.uint64))
            hits = self.window_table(k).index.marked(hashes, self.scratch)  # where a text k-gram may be
            if not hits.size:
                return
            runs = run_lengths(hits)  # hits[i] .. hits[i] + runs[i] - 1 are all hits
            self.longest(block, sums, hits, runs, k)
            if self.filter_length() == k:
                break
        for n in sorted(self.pending):
            self.look_for(n, block, sums, hits, runs, k, hashes)
        if hits[-1] == len(block) - k:  # the block ends inside a run of hits
            self.carry = max(self.carry, min(len(block) - trailing_run_start(hits), self.best.length))

    def unfound_table(self, n: int) -> tuple[HashIndex, np.ndarray]:
        """A table of the n-grams not found yet and their indices, rebuilt whenever an eighth of
        them have been found: once the common n-grams are found, a training n-gram that is
        among them costs a byte of the table's ``mark``, not a look in the whole table."""
        table = self.unfound.get(n)
        if table is None or 8 * self.left[n] <= 7 * len(table[1]):
            left = np.flatnonzero(~self.found[n])
            table = self.unfound[n] = (HashIndex(self.grams[n].keys[left]), left)
        return table

    def look_for(self, n: int, block: Block, sums: np.ndarray, hits: np.ndarray, runs: np.ndarray, k: int,
                 khashes: np.ndarray) -> None:
        """Mark the text's n-grams that occur in ``block``; ``khashes``: the block's k-grams."""
        starts = hits[runs >= n - k + 1]
        if not starts.size:
            return
        table, found = self.grams[n], self.found[n]
        unfound, grams = self.unfound_table(n)
        at, which = unfound.hits(khashes[starts] if n == k else self.powers.windows(sums, n, starts), self.scratch)
        starts, ids = starts[at], grams[which]
        new = ~found[ids]  # found since the table was built
        starts, ids = starts[new], ids[new]
        unique, first = np.unique(ids, return_index=True)
        good = block.confirm(starts[first], self.text, table.first[unique], n)
        found[unique[good]] = True
        self.left[n] -= int(good.sum())
        for gram in unique[~good]:  # a fingerprint shared by different windows: try the others
            for start in starts[ids == gram]:
                if block.agree(int(start), self.text, int(table.first[gram]), n) == n:
                    found[gram] = True
                    self.left[n] -= 1
                    break
        if not self.left[n]:
            self.pending.discard(n)

    def longest(self, block: Block, sums: np.ndarray, hits: np.ndarray, runs: np.ndarray, k: int) -> None:
        """Raise ``best`` to the longest text window in ``block`` (see the module doc, step 3), or
        until it outgrows the filter ``k``."""
        most = int(runs.max()) + k - 1  # no match in this block is longer
        while self.best.length < min(most, self.m) and self.filter_length() == k:
            length = self.best.length + 1
            hit = self.first_match(block, sums, hits[runs >= length - k + 1], length)
            if hit is None:
                return
            i, j = hit
            self.best = Match(self.extend(block, i, j, length), j, block.where(i))

    def first_match(self, block: Block, sums: np.ndarray, starts: np.ndarray, length: int) -> tuple[int, int] | None:
        """A window of ``length`` at one of ``starts`` in ``block`` confirmed equal to a window
        of the text, as ``(i, j)``; None when there is none. The fingerprints of both sides meet
        in a table: of the text's windows when this length was asked about before (the longest
        match stays the same length over many blocks), else of the smaller side, built for this
        one question."""
        here = self.powers.windows(sums, length, starts)
        if self.probe[0] == length:
            there, index = self.probe[1], self.probe[2]
            small_here = False
        else:
            there = self.powers.windows(self.sums, length)
            small_here = len(here) <= len(there)
            if self.probe[0] == -length:  # the second time: keep a table
                index, small_here = HashIndex(there), False
                self.probe = (length, there, index)
            else:
                index = HashIndex(here if small_here else there)
                self.probe = (-length, None, None)
        table, queries = (here, there) if small_here else (there, here)
        found, which = index.hits(queries, self.scratch)
        for q, t in zip(found.tolist(), which.tolist()):  # the first pair usually holds
            for t in alternatives(table, t):
                i, j = (int(starts[t]), q) if small_here else (int(starts[q]), t)
                if block.agree(i, self.text, j, length) == length:
                    return i, j
        return None

    def extend(self, block: Block, i: int, j: int, length: int) -> int:
        """The length of the match at ``i`` (block) and ``j`` (text), known to be >= ``length``,
        grown as far as both go, comparing in doubling steps."""
        limit = min(len(block) - i, self.m - j)
        step = 64
        while length < limit:
            width = min(step, limit - length)
            differ = np.flatnonzero(block.ids[i + length : i + length + width]
                                    != self.text.units[j + length : j + length + width])
            if differ.size:
                length += int(differ[0])
                break
            length += width
            step *= 2
        return block.agree(i, self.text, j, length)


def alternatives(keys: np.ndarray, at: int) -> Iterator[int]:
    """``at``, then every other index of an equal key (one fingerprint of different windows)."""
    yield at
    yield from (t for t in np.flatnonzero(keys == keys[at]).tolist() if t != at)


def run_lengths(hits: np.ndarray) -> np.ndarray:
    """For each position in the ascending ``hits``, how many consecutive integers from it are
    in ``hits`` (itself included)."""
    breaks = np.flatnonzero(np.diff(hits) != 1)
    last = np.append(breaks, len(hits) - 1)  # index of the last hit of each run
    run = np.zeros(len(hits), dtype=np.int64)
    run[breaks + 1] = 1
    return hits[last[np.cumsum(run)]] - hits + 1


def trailing_run_start(hits: np.ndarray) -> int:
    """The first integer of the run of consecutive integers that ends the ascending ``hits``."""
    gaps = hits - np.arange(len(hits))  # constant along a run, rising between runs
    return int(hits[np.searchsorted(gaps, gaps[-1])])


def joined(scratch: Scratch, name: str, first: np.ndarray, second: np.ndarray, shift: int = 0) -> np.ndarray:
    """``first`` then ``second + shift``, in the scratch array ``name``."""
    out = scratch.get(name, len(first) + len(second), np.result_type(first, second))
    out[: len(first)] = first
    np.add(second, shift, out=out[len(first) :], casting="unsafe")
    return out
