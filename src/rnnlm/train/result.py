"""How a training session ends: its result, or an exception that says what stopped it, what was
kept and where (so that the caller can tell the user how to go on)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlm.atomic import WriteFailed
from rnnlm.notebook import png_html
from rnnlm.runfolder import PLOT
from rnnlm.data.textdata import TextData
from rnnlm.train.learner import Learner


@dataclass(frozen=True)
class BudgetUse:
    """How a planned run (``--budget``) kept to its time, all its sessions together."""

    budget: float  # seconds it had: those given, or where its plan ended early, the plan's
    spent: float  # seconds it used
    planned_steps: int  # optimiser steps of its plan
    trained_steps: int  # optimiser steps it trained
    held: int  # steps trained while the schedule waited: the machine ran faster than the probe said
    skipped: int  # steps of the schedule skipped to keep to the time: the machine ran slower
    asked: float | None = None  # seconds given, where the plan ended early (rnnlm.train.recipe.MAX_EPOCHS)


@dataclass(frozen=True)
class TrainResult:
    """A training session that ended (its phases done, or stopped early by its time or by its
    patience): the run folder, the run's history, why it stopped, and for a planned run how it
    kept to its budget. ``learner`` and ``data`` are there for a caller that looks further (a
    test, a benchmark)."""

    folder: Path
    history: list[dict[str, Any]]
    stop_reason: str | None  # None: trained to its end; "time", "patience", or a callback's reason
    epoch: int  # epochs completed
    world_size: int  # processes it trained in (torchrun)
    is_main: bool  # whether this process is rank 0, the one that speaks for the run
    budget: BudgetUse | None
    learner: Learner
    data: TextData

    @property
    def best(self) -> dict[str, Any]:
        """The row with the lowest validation loss."""
        return min(self.history, key=lambda r: r["valid_loss"])

    def _repr_html_(self) -> str:
        """How it ended, and the loss curve, as a notebook shows a training's result."""
        best = self.best
        line = (f"best valid_loss {best['valid_loss']:.4f} (epoch {best['epoch']}), accuracy {best['accuracy']:.4f}, "
                f"bits/char {best['bpc']:.4f}; run saved in {self.folder}")
        if self.stop_reason is not None:
            line += f"; stopped by {self.stop_reason}"
        plot = self.folder / PLOT
        return f"<div><p>{html.escape(line)}</p>{png_html(plot, 'loss curve') if plot.is_file() else ''}</div>"

    @property
    def level(self) -> str:
        """The token level the run trained at (char, word or bpe)."""
        return self.data.tokenizer.level

    @classmethod
    def of(cls, folder: Path, learner: Learner, data: TextData) -> "TrainResult":
        pacer, at = learner.pacer, learner.position
        budget = None
        if pacer is not None:
            budget = BudgetUse(pacer.plan.budget, pacer.spent(), pacer.plan.steps, at.step, pacer.held,
                               at.plan_step + pacer.held - at.step, pacer.plan.asked)
        return cls(folder, learner.history, learner.stop_reason, at.epoch, learner.dist.world_size,
                   learner.dist.is_main, budget, learner, data)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during training: the state was saved in ``folder`` at ``position``
    (in words); ``resume(folder)`` goes on, in as many processes (``world_size``)."""

    def __init__(self, folder: Path, position: str, world_size: int):
        super().__init__(f"interrupted {position}; state saved in {folder}")
        self.folder, self.position, self.world_size = folder, position, world_size


class SaveFailed(WriteFailed):
    """A write failed (a full disk) once the run had saved its state: ``kept`` says what failed
    and that ``folder`` keeps the state saved earlier; ``resume(folder)`` goes on, in as many
    processes (``world_size``), once there is room."""

    def __init__(self, kept: str, folder: Path, world_size: int):
        super().__init__(f"{kept}; make room, then resume it")
        self.kept, self.folder, self.world_size = kept, folder, world_size
