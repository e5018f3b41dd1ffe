"""How much of a text is copied from a run's training text.

Two measures, both exact (fingerprints find the candidates, the symbols confirm them):

- the longest substring of the text that occurs in the training text, where it is in both;
- for n = 10, 20, 50 characters (character level) or 3, 5, 8 words (word level), the share of
  the text's n-grams (counted with repeats) that occur in the training text. A model that has
  learnt the language shares most 10-character n-grams with its corpus and few 50-character
  ones; one that recites its corpus shares them all.

The training text is read once, in blocks, in memory that does not grow with it (see
``rnnlm.inspect.matching`` and ``rnnlm.inspect.trainingtext``); several texts (the samples of
one ``generate``) share the one pass: ``novelty_for_samples``.

    report = novelty_for_run("runs/nietzsche", text)
    report.longest.length, report.shared[0].fraction
    print(report.summary())
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rnnlm.config import DataConfig
from rnnlm.data.items import load_items
from rnnlm.data.tokenizers import WORD_RE, make_tokenizer
from rnnlm.errors import RnnlmError, shown
from rnnlm.inspect.hashing import BASES, HashCollision, Powers, Scratch
from rnnlm.inspect.matching import Matcher, TextUnits
from rnnlm.inspect.trainingtext import UNKNOWN, TrainingText, training_text

NGRAMS = {"char": (10, 20, 50), "word": (3, 5, 8)}
MAX_TEXT_BYTES = 4 << 20  # the text is held with its fingerprint tables: a few hundred bytes a character
UNIT_NAMES = {"char": ("character", "characters"), "word": ("word", "words")}


@dataclass
class Longest:
    """The longest substring of the text found in the training text: ``length`` units (characters
    or words), ``text``, at character ``start`` of the text (word ``word`` at word level), and
    where it is in the training text: ``training`` names the ``document`` and gives ``char`` and
    ``line`` for text files, ``token`` at word level and for a prepared folder."""

    length: int
    text: str
    start: int
    word: int | None
    training: dict[str, Any]


@dataclass
class Shared:
    """``found`` of the text's ``total`` n-grams of ``n`` units occur in the training text."""

    n: int
    found: int
    total: int

    @property
    def fraction(self) -> float | None:
        return self.found / self.total if self.total else None


@dataclass
class NoveltyReport:
    """What ``novelty`` found for one text; ``summary()`` for people, ``as_dict()`` for JSON."""

    level: str
    length: int  # units (characters or words) of the text
    training: str  # what was scanned
    scanned: int  # training units read
    finished_early: bool  # stopped before the end: the whole text was found and every n-gram
    longest: Longest | None
    shared: list[Shared]
    lower: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    verdict: str | None = None  # a list's item: new, in training or in validation (the whole item)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for share, entry in zip(self.shared, out["shared"]):
            entry["fraction"] = share.fraction
        if self.verdict is None:
            del out["verdict"]
        return out

    def unit(self, count: int) -> str:
        one, many = UNIT_NAMES[self.level]
        return f"{count:,} {one if count == 1 else many}"

    def summary(self) -> str:
        """A few readable lines."""
        lines = [f"text: {self.unit(self.length)}, {self.level} level{', lower-cased' if self.lower else ''}",
                 f"training text: {self.training}"]
        if self.verdict is not None:
            lines.insert(0, f"the whole item: {self.verdict}")
        if self.longest is None:
            lines.append("longest substring found in the training text: none (no unit of the text occurs there)")
        else:
            at = f"word {self.longest.word:,}, " if self.longest.word is not None else ""
            lines.append(f"longest substring found in the training text: {self.unit(self.longest.length)}, "
                         f"at {at}character {self.longest.start:,} of the text")
            lines.append(f"  {shown(self.longest.text, 400)}")
            lines.append(f"  in {place(self.longest.training)}")
        if any(s.total for s in self.shared):
            lines.append("n-grams of the text found in the training text:")
        for s in self.shared:
            if s.total:
                lines.append(f"  {self.unit(s.n):>15}  {s.found:>9,} of {s.total:<9,} {100 * s.fraction:6.2f}%")
        lines += [f"note: {note}" for note in self.notes]
        how = ("stopped early: the whole text was found and every n-gram" if self.finished_early
               else "all of it")
        lines.append(f"scanned {self.unit(self.scanned)} of training text in {self.seconds:.2f} s ({how})")
        return "\n".join(lines)


def place(where: dict[str, Any]) -> str:
    parts = [f"{key} {where[key]:,}" for key in ("line", "char", "token") if key in where]
    return f"{where.get('document', '?')}: " + ", ".join(parts)


def check_sizes(ns: Sequence[int] | None, level: str) -> tuple[int, ...]:
    if ns is None:
        return NGRAMS[level]
    if not ns or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in ns):
        raise RnnlmError(f"n-gram sizes must be whole numbers >= 1 (got {shown(list(ns))})")
    return tuple(sorted(set(ns)))


def scan(training: TrainingText, texts: Sequence[str], ns: Sequence[int] | None = None,
         progress: bool | None = None) -> list[NoveltyReport]:
    """One report per text, from one pass over the training text."""
    start = time.monotonic()
    sizes = check_sizes(ns, training.level)
    progress = sys.stderr.isatty() if progress is None else progress
    units = training.encode(list(texts))
    for base in BASES:
        try:
            powers, scratch = Powers(base), Scratch()
            matchers = [Matcher(u, sizes, powers, scratch) for u in units]
            blocks = training.blocks(powers, progress)
            break
        except HashCollision:  # two different windows of a text share a fingerprint: another base
            continue
    else:
        raise RnnlmError("cannot fingerprint the text without collisions (is it built to defeat polynomial hashes?)")
    scanned, carry, early = 0, None, False
    try:
        for block in blocks:
            if all(m.done for m in matchers):  # the rest cannot change a thing
                early = True
                break
            scanned += len(block)
            here = carry.join(block, scratch) if carry is not None and not block.first else block
            sums = powers.prefix(here.ids, out=scratch.get("sums", len(here) + 1, np.uint64))
            keep = 0
            for matcher in matchers:
                if not matcher.done:
                    matcher.feed(here, sums)
                    keep = max(keep, matcher.carry)
            carry = here.tail(min(keep, len(here)))
    finally:
        blocks.close()  # stops the reading thread
    seconds = time.monotonic() - start
    return [report(training, m, u, scanned, early, seconds) for m, u in zip(matchers, units)]


def report(training: TrainingText, matcher: Matcher, text: TextUnits, scanned: int, early: bool,
           seconds: float) -> NoveltyReport:
    level, m = training.level, len(text)
    longest = None
    if matcher.best.length:
        begin, end = text.characters(matcher.best.text_start, matcher.best.length)
        longest = Longest(matcher.best.length, text.text[begin:end], begin,
                          matcher.best.text_start if level == "word" else None, matcher.best.training)
    shared = [Shared(n, *matcher.shared(n)) for n in matcher.ns]
    out = NoveltyReport(level, m, training.description, scanned, early and m > 0, longest, shared, training.lower,
                        round(seconds, 3))
    many = UNIT_NAMES[level][1]
    if m == 0:
        out.notes.append(f"the text has no {many}: nothing to look for")
    short = [n for n in matcher.ns if n > m]
    if m and short:
        out.notes.append(f"the text has {out.unit(m)}, fewer than {' or '.join(map(str, short))}: "
                         "no n-grams of that size to look for")
    unknown = int((text.units == UNKNOWN).sum())
    if unknown:
        out.notes.append(f"{out.unit(unknown)} of the text cannot occur in the training text (unknown to its vocab, "
                         "or xxunk, which stands for any rare word): they match nothing")
    if training.note:
        out.notes.append(training.note)
    if training.lower:
        out.notes.append("the text was lower-cased before comparing, as the run lower-cased its corpus")
    return out


def resolve(training: TrainingText | DataConfig, level: str | None) -> TrainingText:
    if isinstance(training, DataConfig):
        return training_text(replace(training, level=level) if level else training)
    if level is not None and level != training.level:
        raise RnnlmError(f"level {level!r} differs from the training text's ({training.level})")
    return training


def check_text(text: str, training: TrainingText, name: str = "the text") -> None:
    if not text:
        raise RnnlmError(f"{name}: is empty; there is nothing to look for")
    if training.level == "word" and not WORD_RE.search(training.compared(text)):
        raise RnnlmError(f"{name}: has no words; there is nothing to look for")


def novelty(text: str, training: TrainingText | DataConfig, level: str | None = None,
            ns: Sequence[int] | None = None, progress: bool | None = None, name: str = "the text") -> NoveltyReport:
    """How much of ``text`` is copied from ``training``: data settings (``DataConfig``: a source
    and how to read and split it) or a ``TrainingText``. ``level``: char or word (default: the
    data's); ``ns``: the n-gram sizes (default 10, 20, 50 characters or 3, 5, 8 words);
    ``progress``: a bar on stderr (default: when it is a terminal); ``name``: the text's name
    in errors."""
    training = resolve(training, level)
    check_text(text, training, name)
    return scan(training, [text], ns, progress)[0]


def run_data(run: Any) -> tuple[Path, DataConfig]:
    """The folder and data settings of a run: a run folder or a loaded ``rnnlm.runfolder.Run``."""
    from rnnlm.runfolder import read_config

    if hasattr(run, "config") and hasattr(run, "folder"):
        return Path(run.folder), run.config.data
    folder = Path(run)
    return folder, read_config(folder)[1].data


def run_training_text(run: Any) -> TrainingText:
    """The training text of a run (a folder or a loaded Run), as the run read it."""
    folder, data = run_data(run)
    return training_text(data, run=folder)


def novelty_for_run(run: str | os.PathLike | Any, text: str, ns: Sequence[int] | None = None,
                    progress: bool | None = None, name: str = "the text") -> NoveltyReport:
    """``novelty`` of ``text`` against the training split of ``run`` (a folder or a loaded Run),
    read as the run read it. ``name`` names the text in errors."""
    return novelty(text, run_training_text(run), None, ns, progress, name)


def novelty_for_samples(run: str | os.PathLike | Any, texts: Sequence[str], ns: Sequence[int] | None = None,
                        progress: bool | None = None) -> list[NoveltyReport]:
    """One report per text (generated samples), from one pass over the run's training text.
    An empty sample gets a report that says so, not an error. A run on a list's documents judges
    each text as a whole item too (``verdict``), and looks for copied spans within single items."""
    reports = scan(run_training_text(run), texts, ns, progress)
    return judge_items(run, texts, reports)


def judge_items(run: str | os.PathLike | Any, texts: Sequence[str], reports: list[NoveltyReport]) -> list[NoveltyReport]:
    """``reports`` with the verdict on each text as a whole item, when the run was trained on a
    list and keeps the record of its items (``rnnlm.data.items``)."""
    folder, data = run_data(run)
    record = load_items(folder) if data.documents else None
    if record is None:
        return reports
    # items are compared as the run's tokenizer reads them (rnnlm.data.items.item_key): a BPE run's
    # as its characters, lower-cased or not, as a character tokenizer reads them
    tokenizer = make_tokenizer("word" if data.level == "word" else "char", data.lower)
    for text, report in zip(texts, reports):
        report.verdict = record.verdict(tokenizer, text)
    return reports
