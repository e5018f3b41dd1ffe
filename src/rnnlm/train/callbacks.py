"""Callbacks: small objects the fit loop calls at train, epoch and batch begin and end.

Subclass :class:`Callback` and override what you need. Every hook receives the learner, whose
``epoch`` (epochs completed), ``batch`` (batches done in the epoch under way), ``step``,
``tokens_seen``, ``lr``, ``history``, ``phase`` and ``model`` describe where training stands
(``learner.position`` holds every counter). The epoch hooks mark the learner's rounds: an epoch,
or in a planned run (``--budget``) the steps between two validations. A callback can stop
training: ``learner.request_stop(reason)`` ends it after the current round.

``on_train_begin`` and ``on_train_end`` run once per phase (each call of ``fit``). A callback
that keeps its own state across epochs returns it from ``state_dict`` as JSON-able data; it is
saved with the resumable training state and handed back to ``load_state_dict`` on resume.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from rnnlm.atomic import append_line, write_text
from rnnlm.notebook import LiveTable, in_notebook
from rnnlm.runfolder import save_weights
from rnnlm.train.schedules import is_sgdr_cycle_end

if TYPE_CHECKING:
    from rnnlm.train.learner import Learner


class Callback:
    def on_train_begin(self, learner: "Learner") -> None: ...
    def on_epoch_begin(self, learner: "Learner") -> None: ...
    def on_batch_end(self, learner: "Learner", loss: float | None) -> None:
        """``loss`` is the running train loss of the epoch when the learner synced it this batch
        (every ``log_every`` batches and at the last), else None."""
    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None: ...
    def on_train_end(self, learner: "Learner") -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ProgressBar(Callback):
    """A tqdm bar over the batches of each epoch with the running loss: tqdm's notebook bar in a
    notebook, its terminal bar on a terminal, none when stderr goes elsewhere (a file, a pipe)."""

    def __init__(self, enabled: bool | None = None):
        self.notebook = in_notebook()
        self.enabled = (sys.stderr.isatty() or self.notebook) if enabled is None else enabled
        self.bar: tqdm | None = None

    def on_epoch_begin(self, learner: "Learner") -> None:
        if not self.enabled:
            return
        if learner.valid_at is not None:  # a planned run: one bar over the steps of its plan
            total, initial, desc = learner.valid_at[-1], learner.plan_step, "plan"
        else:
            total, initial, desc = learner.batches_per_epoch, learner.batch, f"epoch {learner.epoch + 1}"
        bar = notebook_bar() if self.notebook else tqdm
        self.bar = bar(total=total, initial=initial, desc=desc, leave=False, unit="batch", dynamic_ncols=True)

    def on_batch_end(self, learner: "Learner", loss: float | None) -> None:
        if self.bar is not None:
            self.bar.update(learner.plan_step - self.bar.n if learner.valid_at is not None else 1)
            if loss is not None:
                extra = {"time left": format_time(max(learner.pacer.left(), 0))} if learner.pacer else {}
                self.bar.set_postfix(loss=f"{loss:.4f}", **extra)

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        self.on_train_end(learner)

    def on_train_end(self, learner: "Learner") -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def notebook_bar() -> type[tqdm]:
    """tqdm's notebook bar where its widgets are installed, else its terminal bar (which a
    notebook shows too)."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return tqdm
    from tqdm.notebook import tqdm as bar

    return bar


COLUMNS = (("epoch", 5, "d"), ("train_loss", 10, ".4f"), ("valid_loss", 10, ".4f"),
           ("accuracy", 8, ".4f"), ("bpc", 7, ".4f"), ("time", 7, ""))


def format_time(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes:02d}:{secs:02d}"


class EpochTable(Callback):
    """One table row an epoch: epoch, train_loss and valid_loss (nats per token), accuracy, bpc
    (bits per character of the validation text, at every level), time. Printed to ``file``
    (None: stdout), or in a notebook (``file`` None) an HTML table that grows in place."""

    def __init__(self, file=None):
        self.file = file
        self.table: LiveTable | None = None
        self.header_written = False

    def write(self, line: str) -> None:
        print(line, file=self.file or sys.stdout, flush=True)

    def on_train_begin(self, learner: "Learner") -> None:
        if self.header_written:
            return
        self.header_written = True
        if self.file is None and in_notebook():
            self.table = LiveTable([name for name, _, _ in COLUMNS])
        else:
            self.write("  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS))

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        values = {**row, "time": format_time(row["time"])}
        specs = {"epoch": ".2f"} if isinstance(row["epoch"], float) else {}  # planned runs validate mid-epoch
        cells = [f"{values[name]:{specs.get(name, spec)}}" for name, _, spec in COLUMNS]
        if self.table is not None:
            self.table.add(cells)
        else:
            self.write("  ".join(f"{cell:>{width}}" for cell, (_, width, _) in zip(cells, COLUMNS)))


class MetricsLog(Callback):
    """Each epoch's row as one JSON object a line. The file always matches ``learner.history``:
    a resumed run rewrites it first, so an epoch is never repeated or skipped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, learner: "Learner") -> None:
        if learner.history or self.path.exists():
            write_text(self.path, "".join(json.dumps(row) + "\n" for row in learner.history))

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        append_line(self.path, json.dumps(row))


class SaveCheckpoints(Callback):
    """Writes ``last`` every epoch and ``best`` when the valid loss improves (safetensors)."""

    def __init__(self, best: str | Path, last: str | Path):
        self.best_path, self.last_path = Path(best), Path(last)
        self.best = math.inf
        self.saved = False

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        save_weights(self.last_path, learner.model)
        loss = row["valid_loss"]
        if not self.saved or (math.isfinite(loss) and loss < self.best):
            self.best = loss if math.isfinite(loss) else self.best
            save_weights(self.best_path, learner.model)
        self.saved = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "saved": self.saved}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.saved = float(state.get("best", math.inf)), bool(state.get("saved", False))


class SaveCycleEnds(Callback):
    """Saves the weights at the end of each SGDR cycle as ``cycle_1.safetensors``,
    ``cycle_2.safetensors``, ... in ``folder`` (the lessons' ``cycle_save_name``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.cycles = 0

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        phase = learner.phase
        if not phase.planned:
            done, first = learner.epoch - phase.start_epoch, phase.cycle_len
        else:  # a planned run (--budget): cycles of steps
            done, first = learner.plan_step - phase.start_step, phase.cycle_steps or phase.planned_steps
        if phase.schedule == "sgdr" and is_sgdr_cycle_end(done, first, phase.cycle_mult):
            self.cycles += 1
            save_weights(self.folder / f"cycle_{self.cycles}.safetensors", learner.model)

    def state_dict(self) -> dict[str, Any]:
        return {"cycles": self.cycles}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cycles = int(state.get("cycles", 0))


class EarlyStopping(Callback):
    """Stops training when the valid loss has not improved for ``patience`` epochs."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = math.inf
        self.waited = 0

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        loss = row["valid_loss"]
        if math.isfinite(loss) and loss < self.best:
            self.best, self.waited = loss, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            learner.request_stop("patience")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.waited = float(state.get("best", math.inf)), int(state.get("waited", 0))


class LossPlot(Callback):
    """Redraws a PNG each epoch: train and valid loss against tokens seen, learning rate below.

    Train points are the mean loss of the batches since the previous point (one every
    ``learner.log_every`` batches)."""

    def __init__(self, path: str | Path, title: str = ""):
        self.path, self.title = Path(path), title
        self.train: list[tuple[int, float]] = []  # (tokens seen, mean loss since the last point)
        self.lrs: list[tuple[int, float]] = []
        self.valid: list[tuple[int, float]] = []
        self.epoch_ends: list[int] = []
        self.last = (0, 0.0)  # (batch, running loss) at the previous point of this epoch

    def on_epoch_begin(self, learner: "Learner") -> None:
        if learner.position.round_batches == 0:
            self.last = (0, 0.0)

    def on_batch_end(self, learner: "Learner", loss: float | None) -> None:
        if loss is None:
            return
        batch, running = self.last
        done = learner.position.round_batches
        mean = (loss * done - running * batch) / max(done - batch, 1)
        self.train.append((learner.tokens_seen, mean))
        self.lrs.append((learner.tokens_seen, learner.lr))
        self.last = (done, loss)

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        from rnnlm.train.plots import plot_loss_curve

        self.valid.append((learner.tokens_seen, row["valid_loss"]))
        self.epoch_ends.append(learner.tokens_seen)
        labels = None
        if learner.valid_at is not None:  # a planned run validates where its plan says: mark the epochs there
            per_epoch = learner.train_data.tokens * learner.dist.world_size
            labels = [f"{tokens / per_epoch:.3g}" for tokens in self.epoch_ends]
        plot_loss_curve(self.path, self.train, self.valid, self.lrs, self.epoch_ends, self.title, labels)

    def state_dict(self) -> dict[str, Any]:
        return {"train": self.train, "lrs": self.lrs, "valid": self.valid,
                "epoch_ends": self.epoch_ends, "last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train = number_pairs(state.get("train", []))
        self.lrs = number_pairs(state.get("lrs", []))
        self.valid = number_pairs(state.get("valid", []))
        self.epoch_ends = [int(n) for n in state.get("epoch_ends", [])]
        self.last = number_pairs([state.get("last", (0, 0.0))])[0]


def number_pairs(values: list) -> list[tuple[float, float]]:
    """Points read back from a saved state; ValueError unless each is a pair of numbers."""
    pairs = [tuple(p) for p in values]
    if not all(len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
               for p in pairs):
        raise ValueError("plot points must be pairs of numbers")
    return pairs
