"""The lessons' fit loop: a model, its data, a recipe; one row an epoch.

Any model of :mod:`rnnlm.lessons.models` fits: it maps token ids to logits, (bs, vocab) or
(bs, seq, vocab), and the targets have the matching shape, (bs,) or (bs, seq). The loss is the
cross-entropy over every target (the lessons' ``nll_loss`` / ``nll_loss_seq``). A stateful model
starts every pass over the training data, and every validation, from a zero state.

A phase may last a fraction of an epoch (recipes scaled down for a quick run): the training data
is read as one endless sequence of passes, so the next phase goes on where the last one stopped.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, TextIO

import torch
import torch.nn.functional as F
from tqdm import tqdm

from rnnlm.errors import RnnlmError
from rnnlm.lessons.models import Stateful
from rnnlm.lessons.recipe import LessonRecipe, make_optimizer
from rnnlm.train.schedules import Phase

SMOOTHING = 0.98  # the running train loss, as fastai prints it: a debiased moving average


class Batches(Protocol):
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass
class FitLog:
    rows: list[dict] = field(default_factory=list)
    first_loss: float = math.nan  # loss of the very first batch, before any step
    cycles: int = 0  # SGDR cycles completed


def flat_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def reset_state(model: torch.nn.Module) -> None:
    if isinstance(model, Stateful):
        model.reset()


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Batches, device: torch.device) -> tuple[float, float]:
    """Mean loss and accuracy over every target; a stateful model's training state is set aside."""
    saved = model.h if isinstance(model, Stateful) else None
    reset_state(model)
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        logits, y = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        count += y.numel()
    model.train(was_training)
    if isinstance(model, Stateful):
        model.h = saved
    return (loss_sum / count, correct / count) if count else (math.nan, math.nan)


def endless(batches: Batches, model: torch.nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Pass after pass over the training batches, each pass from a zero state."""
    while True:
        reset_state(model)
        yield from batches


# lr: the rate of the row's last batch; time: seconds of training and validation
COLUMNS = (("epoch", 6, ".2f"), ("lr", 9, ".2e"), ("train_loss", 10, ".4f"),
           ("valid_loss", 10, ".4f"), ("accuracy", 8, ".4f"), ("time", 6, ".1f"))


def format_row(row: dict) -> str:
    return "  ".join(f"{row[name]:>{width}{spec}}" for name, width, spec in COLUMNS)


def format_header() -> str:
    return "  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS)


@dataclass
class Fitting:
    """A fit under way: the model, its optimiser, the endless stream of training batches, the
    running train loss (as fastai prints it: a debiased moving average) and the log."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    stream: Iterator[tuple[torch.Tensor, torch.Tensor]]
    device: torch.device
    on_cycle_end: Callable[[int], None] | None
    progress: bool
    log: FitLog = field(default_factory=FitLog)
    smooth: float = 0.0
    seen: int = 0  # batches trained

    @property
    def train_loss(self) -> float:
        return self.smooth / (1 - SMOOTHING**self.seen)

    def train(self, phase: Phase, scheduler: torch.optim.lr_scheduler.LRScheduler, batches: int) -> float:
        """Train the next ``batches`` batches of the stream in ``phase``; returns the rate of the last."""
        for _ in tqdm(range(batches), leave=False, disable=not self.progress, unit="batch"):
            x, y = next(self.stream)
            loss = flat_cross_entropy(self.model(x.to(self.device)), y.to(self.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            scheduler.step()
            value = loss.item()
            if not math.isfinite(value):
                raise RnnlmError(f"loss became {value} at batch {self.seen + 1}: training diverged")
            if self.seen == 0:
                self.log.first_loss = value
            self.seen += 1
            self.smooth = SMOOTHING * self.smooth + (1 - SMOOTHING) * value
            if phase.schedule == "sgdr" and scheduler.T_cur == 0:
                self.log.cycles += 1
                if phase.save_cycles and self.on_cycle_end:
                    self.on_cycle_end(self.log.cycles)
        return lr


def fit(
    model: torch.nn.Module,
    train: Batches,
    valid: Batches,
    recipe: LessonRecipe,
    *,
    device: torch.device | str = "cpu",
    on_cycle_end: Callable[[int], None] | None = None,
    log: TextIO | None = None,
    progress: bool | None = None,
) -> FitLog:
    """Train ``model`` through the phases of ``recipe``; validate after every epoch (or the
    shorter remainder of a phase). ``on_cycle_end(k)`` runs after the k-th SGDR cycle of a
    phase with ``save_cycles``."""
    device = torch.device(device)
    model.to(device).train()
    out = log or sys.stdout
    progress = sys.stderr.isatty() if progress is None else progress
    optimizer = make_optimizer(recipe, model.parameters())
    per_epoch = len(train)
    if per_epoch == 0:
        raise RnnlmError("the training data holds no batch")
    fitting = Fitting(model, optimizer, endless(train, model), device, on_cycle_end, progress)
    done = 0
    print(format_header(), file=out, flush=True)
    for phase in recipe.phases:
        scheduler = phase.scheduler(optimizer, per_epoch)
        left = phase.steps(per_epoch)
        while left:
            chunk = min(left, per_epoch)
            start = time.monotonic()
            lr = fitting.train(phase, scheduler, chunk)
            left -= chunk
            done += chunk
            valid_loss, accuracy = evaluate(model, valid, device)
            row = {"epoch": done / per_epoch, "lr": lr, "train_loss": fitting.train_loss, "valid_loss": valid_loss,
                   "accuracy": accuracy, "time": time.monotonic() - start}
            fitting.log.rows.append(row)
            print(format_row(row), file=out, flush=True)
    return fitting.log
