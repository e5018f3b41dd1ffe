"""What one training session brings to a run, whatever its settings."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence, TextIO

from rnnlm.train.budget import Clock
from rnnlm.train.callbacks import Callback


@dataclass(frozen=True)
class Session:
    """The caller's ``callbacks``; the progress bar (None: when stderr is a terminal); where the
    table and the plan go (``log``, None: stdout); the ``clock`` a budget is measured on, and
    when the session ``started`` on it."""

    callbacks: Sequence[Callback]
    progress: bool | None
    log: TextIO | None
    clock: Clock
    started: float

    @classmethod
    def begin(cls, callbacks: Sequence[Callback] | None = None, progress: bool | None = None,
              log: TextIO | None = None, clock: Clock = time.monotonic) -> "Session":
        """A session that begins now, on ``clock``."""
        return cls(list(callbacks or ()), progress, log, clock, clock())

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)
