"""Samples of a run trained on a list: each one a whole document, with its verdict.

A sample of a run on documents starts at the boundary token (after the prompt, which is the
start of a document) and ends when the model draws the boundary again (finish reason ``end``).
Its verdict (``rnnlm.data.items``) says whether the whole item is in the training list, in the
validation list, or new. ``draw_documents`` draws ``n`` samples; with ``new_only`` it keeps
drawing, in batches and up to a bound, until ``n`` distinct new items are found.

    session = GenerationSession.load("runs/names")
    drawn = draw_documents(session, session.read(""), load_items("runs/names"), 10, seed=1)
    for sample in drawn.samples:
        print(sample.verdict, sample.text)
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rnnlm.data.items import NEW, VERDICTS, ItemRecord
from rnnlm.errors import RnnlmError
from rnnlm.generation.prompt import PromptReading
from rnnlm.generation.sampling import MAX_SAMPLING_SEED
from rnnlm.generation.session import MAX_SAMPLES, GenerationSession
from rnnlm.generation.stream import Stream

DRAWS_PER_NEW_ITEM = 20  # new_only: draws allowed for each new item asked for
MIN_DRAWS = 100  # new_only: draws allowed however few items are asked for


@dataclass
class Sample:
    """One drawn document: the stream, its whole text (the prompt first) and its verdict (None
    when the run keeps no record of its items)."""

    stream: Stream
    text: str
    verdict: str | None


@dataclass
class Drawn:
    """The samples kept, and how many were drawn to find them."""

    samples: list[Sample]
    draws: int
    seen: Counter  # verdicts of every draw that ended, new_only's rejects included

    def counts(self) -> dict[str, int]:
        """How many of the kept samples have each verdict."""
        found = Counter(s.verdict for s in self.samples)
        return {v: found[v] for v in VERDICTS}

    def summary(self) -> str:
        """``10 samples: 7 new, 2 in training, 1 in validation``."""
        n = len(self.samples)
        judged = all(s.verdict is not None for s in self.samples)
        parts = ": " + ", ".join(f"{count} {verdict}" for verdict, count in self.counts().items()) if judged else ""
        unfinished = sum(s.stream.finish_reason != "end" for s in self.samples)
        cut = f"; {unfinished} cut before their end" if unfinished else ""
        return f"{n} sample{'s' if n != 1 else ''}{parts}{cut}"


class NotEnoughNew(RnnlmError):
    """``new_only`` found fewer new items than asked for within its draws (at ``temperature``)."""

    def __init__(self, message: str, temperature: float):
        super().__init__(message)
        self.temperature = temperature


def max_draws(n: int) -> int:
    return max(MIN_DRAWS, DRAWS_PER_NEW_ITEM * n)


def draw_documents(session: GenerationSession, reading: PromptReading, record: ItemRecord | None, n: int, *,
                   new_only: bool = False, seed: int | None = None, **options: Any) -> Drawn:
    """``n`` samples continuing ``reading`` (a prompt read to its end), each with its verdict.
    ``new_only``: keep drawing, at most ``max_draws(n)`` samples, until ``n`` distinct new items
    have ended; NotEnoughNew (saying how many were found) when they were not. Draw ``i`` (from 0)
    uses seed ``seed + i``. ``options``: as ``GenerationSession.start`` takes them."""
    base = random.SystemRandom().getrandbits(63) % (MAX_SAMPLING_SEED + 1) if seed is None else seed
    if not new_only:
        samples = judged(session, reading, record, session.start(reading, n=n, seed=base, **options))
        return Drawn(samples, n, Counter(s.verdict for s in samples if s.stream.finish_reason == "end"))
    if record is None:
        raise RnnlmError("only new items were asked for, but the run keeps no record of its training items "
                         "(it was not trained on a list)")
    kept: dict[str, Sample] = {}
    seen: Counter = Counter()
    draws, limit = 0, max_draws(n)
    while len(kept) < n and draws < limit:
        wanted = n - len(kept)  # all of them at first; then twice what is missing, since some come back old
        batch = min(MAX_SAMPLES, limit - draws, wanted if draws == 0 else max(2 * wanted, 8))
        streams = session.start(reading, n=batch, seed=(base + draws) % (MAX_SAMPLING_SEED + 1), **options)
        for sample in judged(session, reading, record, streams):
            if sample.stream.finish_reason == "end":
                seen[sample.verdict] += 1
                if sample.verdict == NEW and sample.text not in kept and len(kept) < n:
                    kept[sample.text] = sample
        draws += batch
    if len(kept) < n:
        raise NotEnoughNew(f"found {len(kept)} new item{'s' if len(kept) != 1 else ''} of the {n} asked for in "
                           f"{draws:,} draws ({seen_text(seen, draws)}); ask for fewer, or raise the temperature",
                           options["sampling"].temperature if "sampling" in options else 1.0)
    return Drawn(list(kept.values()), draws, seen)


def seen_text(seen: Counter, draws: int) -> str:
    """``31 new, 60 in training, 9 in validation, 0 cut``: what the draws were."""
    ended = sum(seen.values())
    return ", ".join([f"{seen[v]} {v}" for v in VERDICTS] + [f"{draws - ended} cut before their end"])


def judged(session: GenerationSession, reading: PromptReading, record: ItemRecord | None,
           streams: list[Stream]) -> list[Sample]:
    """The streams run to their ends, each with its whole text and verdict."""
    for _ in session.run_streams(streams):
        pass
    texts = [reading.text + s.text for s in streams]
    return [Sample(s, t, None if record is None else record.verdict(session.tokenizer, t))
            for s, t in zip(streams, texts)]
