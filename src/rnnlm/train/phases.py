"""The phases of a run, trained one after the other: the phases of its settings (in epochs), or
those of its ``--budget`` plan (in optimiser steps)."""

from __future__ import annotations

import math
import time

from rnnlm.config import RunConfig
from rnnlm.train.learner import Learner
from rnnlm.train.schedules import Phase
from rnnlm.train.signals import interrupt_saves


def run_phases(config: RunConfig, batches_per_epoch: int) -> list[Phase]:
    """The phases ``config`` trains, each with where it begins: its epoch, or in a planned run
    its plan step."""
    t, plan = config.train, config.plan
    phases, start = [], 0
    if plan is None:
        for lr, epochs in t.plan():
            phases.append(Phase(epochs, lr, t.schedule_name, t.cycle_len, t.cycle_mult, start_epoch=start))
            start += epochs
        return phases
    for i, (lr, steps) in enumerate(plan.phases):
        cycle = plan.cycle_steps[i] if plan.cycle_steps else None
        epochs = max(1, math.ceil(steps / batches_per_epoch))
        phases.append(Phase(epochs, lr, t.schedule_name, t.cycle_len, t.cycle_mult, planned_steps=steps,
                            start_step=start, cycle_steps=cycle))
        start += steps
    return phases


def train_phases(learner: Learner, phases: list[Phase], max_minutes: float | None) -> None:
    """Train the ``phases`` not done yet, going on with the one a resumed run stopped in, until
    they end or something stops training; once ``max_minutes`` are up, the next phase does not
    begin (a session trains at least one batch, however short its time)."""
    deadline = time.monotonic() + 60 * max_minutes if max_minutes else math.inf
    ran = False
    with interrupt_saves(learner):
        for phase in phases:
            if phase.done_at(learner.position):
                continue
            minutes = learner.dist.from_main((deadline - time.monotonic()) / 60) if max_minutes else None
            if ran and minutes is not None and minutes <= 0:
                learner.request_stop("time")
                return
            ran = True
            if not phase.under_way_in(learner.phase):
                learner.start_phase(phase)
            learner.continue_phase(minutes)
            if learner.stop_reason:
                return
