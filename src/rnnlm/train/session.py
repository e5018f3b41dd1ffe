"""What one training session brings to a run, whatever its settings."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TextIO

from rnnlm.train.budget import Clock
from rnnlm.train.callbacks import Callback
from rnnlm.train.tensorboard import check_tensorboard


def field_name(field: str) -> str:
    """A setting as the library names it: its field."""
    return field


@dataclass(frozen=True)
class Session:
    """The caller's ``callbacks``; the progress bar (None: when stderr is a terminal); where the
    table and the plan go (``log``, None: stdout), with each setting they name spelled by
    ``spell`` (the command line spells a field as its option); the ``clock`` a budget is
    measured on, and when the session ``started`` on it; the folder of TensorBoard's event files
    (None: none written)."""

    callbacks: Sequence[Callback]
    progress: bool | None
    log: TextIO | None
    spell: Callable[[str], str]
    clock: Clock
    started: float
    tensorboard: Path | None = None

    @classmethod
    def begin(cls, callbacks: Sequence[Callback] | None = None, progress: bool | None = None,
              log: TextIO | None = None, spell: Callable[[str], str] = field_name,
              clock: Clock = time.monotonic, tensorboard: str | os.PathLike | None = None) -> "Session":
        """A session that begins now, on ``clock``."""
        events = None if tensorboard is None else check_tensorboard(tensorboard)
        return cls(list(callbacks or ()), progress, log, spell, clock, clock(), events)

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)
