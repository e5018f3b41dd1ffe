"""Phases of training and their learning-rate schedules, for runs and the lessons alike.

A phase trains at one peak rate under one schedule from ``torch.optim.lr_scheduler``, stepped once
a batch: ``constant``; ``onecycle`` (warm up then anneal, as fastai's fit_one_cycle); ``sgdr``
(cosine annealing with warm restarts: each cycle ``cycle_mult`` times longer than the one
before). Phases run one after the other on the same optimiser, each with a fresh schedule (the
lessons' ``fit``, then ``set_lrs`` and ``fit`` again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler

from rnnlm.train.position import Position

# The keys of a phase in the resumable training state (rnnlm.train.checkpoint), in its order.
STATE_KEYS = ("epochs", "lr", "schedule", "cycle_len", "cycle_mult", "start_epoch", "steps", "start_step",
              "cycle_steps")
PLANNED_KEYS = ("steps", "start_step", "cycle_steps")  # absent from states of rnnlm before --budget


@dataclass(frozen=True)
class Phase:
    """``epochs`` epochs (a fraction, in a lesson scaled down) at peak rate ``lr`` under
    ``schedule``, the first SGDR cycle ``cycle_len`` epochs long. In a run the phase begins
    after epoch ``start_epoch``; in a planned run (``--budget``) it lasts ``planned_steps``
    optimiser steps from plan step ``start_step``, whatever the epochs, and its first SGDR cycle
    ``cycle_steps``."""

    epochs: float
    lr: float
    schedule: str = "constant"
    cycle_len: float = 1
    cycle_mult: int = 2
    pct_start: float = 0.3  # onecycle: the share of the steps spent warming up
    save_cycles: bool = False  # sgdr: the lessons save the weights at the end of every cycle
    start_epoch: int = 0
    planned_steps: int | None = None
    start_step: int = 0
    cycle_steps: int | None = None

    @property
    def planned(self) -> bool:
        return self.planned_steps is not None

    @property
    def end_epoch(self) -> float:
        return self.start_epoch + self.epochs

    @property
    def end_step(self) -> int | None:
        return None if self.planned_steps is None else self.start_step + self.planned_steps

    def done_at(self, at: Position) -> bool:
        """Whether training that stands ``at`` has trained this phase to its end."""
        return at.plan_step >= self.end_step if self.planned else at.epoch >= self.end_epoch

    def under_way_in(self, current: Phase | None) -> bool:
        """Whether ``current`` (the phase a learner stands in) is this phase, begun already."""
        if current is None or current.planned != self.planned:
            return False
        return current.start_step == self.start_step if self.planned else current.start_epoch == self.start_epoch

    def steps(self, steps_per_epoch: int) -> int:
        """Optimiser steps in this phase; an SGDR phase of epochs ends exactly at a cycle's end."""
        if self.planned_steps is not None:
            return self.planned_steps
        if self.schedule == "sgdr":
            return max(1, round(self.epochs / self.cycle_len * self.first_cycle(steps_per_epoch)))
        return max(1, round(self.epochs * steps_per_epoch))

    def first_cycle(self, steps_per_epoch: int) -> int:
        """Optimiser steps in the first SGDR cycle."""
        if self.cycle_steps is not None:
            return self.cycle_steps
        return max(1, round(self.cycle_len * steps_per_epoch))

    def scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> lr_scheduler.LRScheduler:
        """A fresh schedule of this phase on ``optimizer``, stepped once a batch."""
        return make_scheduler(optimizer, self.schedule, self.lr, self.steps(steps_per_epoch),
                              self.first_cycle(steps_per_epoch), self.cycle_mult, self.pct_start)

    def describe(self) -> str:
        epochs = f"{self.epochs:g} epoch{'s' if self.epochs != 1 else ''}"
        if self.schedule == "onecycle":
            return f"{epochs} one-cycle to {self.lr:g}" + (
                f" (pct_start {self.pct_start:g})" if self.pct_start != 0.3 else "")
        if self.schedule == "sgdr":
            saves = ", saved at each cycle end" if self.save_cycles else ""
            return f"{epochs} SGDR from {self.lr:g} (cycle_mult {self.cycle_mult}{saves})"
        return f"{epochs} at {self.lr:g}"

    def state(self) -> dict[str, Any]:
        """The phase as the training state keeps it (``STATE_KEYS``)."""
        return {"epochs": self.epochs, "lr": self.lr, "schedule": self.schedule, "cycle_len": self.cycle_len,
                "cycle_mult": self.cycle_mult, "start_epoch": self.start_epoch, "steps": self.planned_steps,
                "start_step": self.start_step, "cycle_steps": self.cycle_steps}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Phase":
        """The phase ``state`` describes (checked beforehand: rnnlm.train.checkpoint.check_phase)."""
        return cls(state["epochs"], state["lr"], state["schedule"], state["cycle_len"], state["cycle_mult"],
                   start_epoch=state["start_epoch"], planned_steps=state.get("steps"),
                   start_step=state.get("start_step", 0), cycle_steps=state.get("cycle_steps"))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    lr: float,
    total_steps: int,
    cycle_steps: int,
    cycle_mult: int = 2,
    pct_start: float = 0.3,
) -> lr_scheduler.LRScheduler:
    """``schedule`` at peak rate ``lr`` over ``total_steps`` steps (onecycle warms up for
    ``pct_start`` of them); SGDR's first cycle lasts ``cycle_steps``, each next one
    ``cycle_mult`` times longer. A parameter group with an ``lr_scale`` (a fine-tuned run's
    lower layers) follows the schedule at that share of the rate."""
    peaks = [lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]
    for group, peak in zip(optimizer.param_groups, peaks):
        group["lr"] = peak
        group["initial_lr"] = peak
    if schedule == "constant":
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if schedule == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=max(total_steps, 2), pct_start=pct_start)
    if schedule == "sgdr":
        return lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cycle_steps, T_mult=cycle_mult)
    raise ValueError(f"unknown schedule {schedule!r}")


def is_sgdr_cycle_end(epochs_into_phase: int, cycle_len: int, cycle_mult: int) -> bool:
    """Whether an SGDR cycle ends after this many epochs of its phase (cycles of cycle_len,
    cycle_len * cycle_mult, cycle_len * cycle_mult ** 2, ... epochs)."""
    end, length = 0, cycle_len
    while end < epochs_into_phase:
        end, length = end + length, length * cycle_mult
    return end == epochs_into_phase > 0
