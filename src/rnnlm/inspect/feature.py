"""Which hidden units track a feature of the text: the "quote-detection cell" experiment.

A regular expression marks the characters of a feature (``"[^"]*"``: inside double quotes,
``\\([^)]*\\)``: inside brackets, ``\\d``: digits); a token is marked when the matches cover any of
its characters (tokens with no text, ``xxbos``, take no part). Each unit is then judged by how
well its activation after reading a token separates marked tokens from the others:

- AUC, the chance that a marked token's activation is above an unmarked one's (ties count
  half): 1 or 0 is a perfect detector (0: one that goes down inside the feature), 0.5 none;
  units are ranked by |AUC - 0.5|;
- the point-biserial correlation, Pearson's r between the activation and the 0/1 mark.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from rnnlm.errors import RnnlmError, invalid, shown
from rnnlm.inspect.score import Scoring

MAX_PATTERN = 1000  # characters of a feature regex


@dataclass
class UnitSeparation:
    unit: int
    auc: float
    r: float  # point-biserial correlation
    mean_marked: float
    mean_unmarked: float


@dataclass
class FeatureRanking:
    pattern: str
    layer: int
    kind: str  # "cell state" or "hidden state"
    marked: int  # tokens marked
    tokens: int  # tokens judged
    units: list[UnitSeparation]  # best first
    matches: list[tuple[int, int]]  # the marked characters as [start, end) ranges of the text

    def as_dict(self) -> dict:
        return {"regex": self.pattern, "layer": self.layer, "state": self.kind, "marked": self.marked,
                "tokens": self.tokens, "matches": [list(m) for m in self.matches],
                "units": [asdict(u) for u in self.units]}


def compile_feature(pattern: str) -> re.Pattern:
    if not pattern:
        raise invalid("feature", "must not be empty")
    if len(pattern) > MAX_PATTERN:
        raise invalid("feature", f"must be at most {MAX_PATTERN} characters (got {len(pattern)})")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise invalid("feature", f"{shown(pattern)}: not a regular expression ({e})") from None


def mark_characters(text: str, pattern: re.Pattern) -> np.ndarray:
    """(len(text),) True where a match of ``pattern`` covers the character."""
    edges = np.zeros(len(text) + 1, dtype=np.int64)
    for m in pattern.finditer(text):
        edges[m.start()] += 1
        edges[m.end()] -= 1
    return np.cumsum(edges[:-1]) > 0


def marked_ranges(chars: np.ndarray) -> list[tuple[int, int]]:
    """The runs of marked characters as [start, end) pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], chars.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def mark_tokens(starts: np.ndarray, ends: np.ndarray, chars: np.ndarray) -> np.ndarray:
    """(N,) True for a token with at least one marked character."""
    covered = np.concatenate([[0], np.cumsum(chars)])
    return covered[ends] - covered[starts] > 0


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (n,), ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    firsts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
    lasts = np.concatenate([firsts[1:], [len(values)]])
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((firsts + lasts + 1) / 2, lasts - firsts)
    return ranks


def auc(values: np.ndarray, marked: np.ndarray) -> float:
    """The Mann-Whitney AUC of ``values`` (n,) for the ``marked`` (n,) ones against the others."""
    n1 = int(marked.sum())
    n0 = len(values) - n1
    return float((average_ranks(values)[marked].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def point_biserial(values: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """Pearson's r between each column of ``values`` (n, U) and the 0/1 ``marked`` (n,); 0 for a
    unit that never changes."""
    x = values.astype(np.float64, copy=False)
    m = marked.astype(np.float64)
    xc = x - x.mean(0)
    mc = m - m.mean()
    denominator = np.sqrt((xc**2).sum(0) * (mc**2).sum())
    return np.divide(mc @ xc, denominator, out=np.zeros(x.shape[1]), where=denominator > 0)


def separations(values: np.ndarray, marked: np.ndarray, units: list[int], rows: np.ndarray | None = None,
                chunk: int = 16) -> list[UnitSeparation]:
    """Every unit (a column of ``values`` (N, U)) judged on ``marked`` (n,) over ``rows`` (N,) (a
    mask of the n judged rows; None: all), best separating first. Columns go a few at a time, so
    the copies made on the way stay small however long the text."""
    found = []
    for j0 in range(0, len(units), chunk):
        block = values[:, j0 : j0 + chunk]
        block = (block if rows is None else block[rows]).astype(np.float64)
        r = point_biserial(block, marked)
        found += [UnitSeparation(units[j0 + j], auc(block[:, j], marked), float(r[j]),
                                 float(block[marked, j].mean()), float(block[~marked, j].mean()))
                  for j in range(block.shape[1])]
    return sorted(found, key=lambda s: (-abs(s.auc - 0.5), s.unit))


def rank_units(scoring: Scoring, pattern: str | re.Pattern) -> FeatureRanking:
    """The traced units of ``scoring`` ranked by how well they separate the tokens ``pattern``
    marks from the others."""
    if scoring.trace is None:
        raise RnnlmError("ranking units needs a scoring that traced them (score_text(..., unit=UnitChoice()))")
    compiled = compile_feature(pattern) if isinstance(pattern, str) else pattern
    chars = mark_characters(scoring.text, compiled)
    marked = mark_tokens(scoring.starts, scoring.ends, chars)
    judged = scoring.ends > scoring.starts
    count, total = int(marked[judged].sum()), int(judged.sum())
    if count == 0:
        raise invalid("feature", f"{shown(compiled.pattern)} matches nothing in the text")
    if count == total:
        raise invalid("feature", f"{shown(compiled.pattern)} matches the whole text: nothing is left to "
                                 "compare the marked characters with")
    trace = scoring.trace
    return FeatureRanking(compiled.pattern, trace.layer, trace.kind, count, total,
                          separations(trace.values, marked[judged], trace.units, judged), marked_ranges(chars))
