"""Callbacks: small objects the fit loop calls at train, epoch and batch begin and end.

Subclass :class:`Callback` and override what you need; every hook receives the learner, whose
``epoch``, ``step``, ``history`` and ``model`` describe where training stands.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from rnnlm.atomic import append_line

if TYPE_CHECKING:
    from rnnlm.train.learner import Learner


class Callback:
    def on_train_begin(self, learner: "Learner") -> None: ...
    def on_epoch_begin(self, learner: "Learner") -> None: ...
    def on_batch_end(self, learner: "Learner", loss: float | None) -> None:
        """``loss`` is the running train loss when the learner synced it this batch, else None."""
    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None: ...
    def on_train_end(self, learner: "Learner") -> None: ...


class ProgressBar(Callback):
    """A tqdm bar over the batches of each epoch with the running loss; off when stderr is no terminal."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: tqdm | None = None

    def on_epoch_begin(self, learner: "Learner") -> None:
        if self.enabled:
            self.bar = tqdm(
                total=learner.batches_per_epoch, desc=f"epoch {learner.epoch}", leave=False,
                unit="batch", dynamic_ncols=True,
            )

    def on_batch_end(self, learner: "Learner", loss: float | None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}")

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


COLUMNS = (("epoch", 5, "d"), ("train_loss", 10, ".4f"), ("valid_loss", 10, ".4f"),
           ("accuracy", 8, ".4f"), ("bpc", 7, ".4f"), ("time", 7, ""))


def format_time(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes:02d}:{secs:02d}"


class EpochTable(Callback):
    """One table row an epoch: epoch, train_loss, valid_loss, accuracy, bpc (bits per token), time."""

    def __init__(self, file=None):
        self.file = file

    def write(self, line: str) -> None:
        print(line, file=self.file or sys.stdout, flush=True)

    def on_train_begin(self, learner: "Learner") -> None:
        self.write("  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS))

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        values = {**row, "time": format_time(row["time"])}
        self.write("  ".join(f"{values[name]:>{width}{spec}}" for name, width, spec in COLUMNS))


class MetricsLog(Callback):
    """Appends each epoch's row as one JSON object to a JSONL file."""

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        append_line(self.path, json.dumps(row))
