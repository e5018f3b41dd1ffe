"""Training recipes of the lessons: an optimiser and phases of learning rates.

The Nietzsche notebooks make an ``optim.Adam`` and call ``fit`` several times, changing the rate
in between (``set_lrs``): one :class:`Phase` per call. The LSTM adds cosine annealing with warm
restarts (fastai's ``CosAnneal`` with ``cycle_mult=2``, here ``CosineAnnealingWarmRestarts``),
saving the weights at the end of every cycle. The human-numbers notebook uses fastai v1's
``fit_one_cycle`` (here ``OneCycleLR``) with fastai v1's default optimiser: Adam with betas
(0.9, 0.99) and decoupled weight decay 0.01 (``AdamW``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import torch
from torch.optim import lr_scheduler

SCHEDULES = ("constant", "onecycle", "sgdr")


@dataclass(frozen=True)
class Phase:
    epochs: float
    lr: float
    schedule: str = "constant"
    pct_start: float = 0.3  # onecycle: the share of steps spent warming up
    cycle_len: float = 1.0  # sgdr: epochs in the first cycle
    cycle_mult: int = 2  # sgdr: each cycle this many times longer than the last
    save_cycles: bool = False  # sgdr: save the weights at the end of every cycle

    def steps(self, steps_per_epoch: int) -> int:
        """Batches in this phase; an SGDR phase ends exactly at the end of a cycle."""
        if self.schedule == "sgdr":
            return max(1, round(self.epochs / self.cycle_len * self.first_cycle(steps_per_epoch)))
        return max(1, round(self.epochs * steps_per_epoch))

    def first_cycle(self, steps_per_epoch: int) -> int:
        return max(1, round(self.cycle_len * steps_per_epoch))

    def describe(self) -> str:
        epochs = f"{self.epochs:g} epoch{'s' if self.epochs != 1 else ''}"
        if self.schedule == "onecycle":
            return f"{epochs} one-cycle to {self.lr:g}" + (
                f" (pct_start {self.pct_start:g})" if self.pct_start != 0.3 else "")
        if self.schedule == "sgdr":
            saves = ", saved at each cycle end" if self.save_cycles else ""
            return f"{epochs} SGDR from {self.lr:g} (cycle_mult {self.cycle_mult}{saves})"
        return f"{epochs} at {self.lr:g}"


@dataclass(frozen=True)
class Recipe:
    phases: tuple[Phase, ...]
    optimizer: str = "adam"  # "adam": torch Adam, L2 weight decay; "adamw": fastai v1's defaults
    wd: float = 0.0

    def describe(self) -> str:
        wd = f", wd {self.wd:g}" if self.wd else ""
        return f"{self.optimizer}{wd}: " + ", then ".join(p.describe() for p in self.phases)

    def scaled(self, factor: float) -> "Recipe":
        """The same recipe with every phase ``factor`` times as long (and SGDR cycles with it)."""
        phases = tuple(replace(p, epochs=p.epochs * factor, cycle_len=p.cycle_len * factor)
                       for p in self.phases)
        return replace(self, phases=phases)

    @property
    def epochs(self) -> float:
        return sum(p.epochs for p in self.phases)


def make_optimizer(recipe: Recipe, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    lr = recipe.phases[0].lr
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=recipe.wd)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=recipe.wd)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def make_scheduler(
    phase: Phase, optimizer: torch.optim.Optimizer, steps: int, steps_per_epoch: int
) -> lr_scheduler.LRScheduler:
    """The phase's schedule over its ``steps`` batches, stepped once a batch."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = phase.lr
    if phase.schedule == "constant":
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if phase.schedule == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=phase.lr, total_steps=max(steps, 2),
                                       pct_start=phase.pct_start)
    if phase.schedule == "sgdr":
        return lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=phase.first_cycle(steps_per_epoch), T_mult=phase.cycle_mult)
    raise ValueError(f"unknown schedule {phase.schedule!r}")
