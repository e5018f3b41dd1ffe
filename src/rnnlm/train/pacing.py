"""Keeping a planned run (``--budget``) to its time while it trains.

A machine that turns out slower or faster than the probe said (other work started or stopped,
the run resumed on another machine) is handled by the ``Pacer``: where training syncs anyway,
the loop asks it to compare the steps left with the time left at the speed of the last few
seconds. When they no longer fit, the schedule skips ahead, by the share of the steps that do
not fit that the time since the last sync is of half the time left: a machine that stays slow
has skipped them all before the end, and one that was slow for a minute (another program ran)
skips about what that minute cost, not what the rest of the run would have cost at its speed
(benchmarks/README.md, "A spell of slowness"). When they fit with time to spare, it
stretches the schedule: a share of the coming steps train at the rate of the moment while the
schedule waits (``after_step`` says which). Either way the rate anneals to its end, and the
last validation comes, when the time is up. A plan that ends before its budget
(rnnlm.train.recipe.MAX_EPOCHS) is never stretched, and skips only where even the budget given
is too short for it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from rnnlm.config import BudgetPlan
from rnnlm.distributed import Distributed
from rnnlm.train.budget import SLACK, Clock
from rnnlm.train.position import Position

TAIL = 0.01  # of the plan's steps, at its end, that are trained however late it runs (the rate's last fall)
MAX_HOLD = 0.5  # of the steps, at most, that train while the schedule waits (a machine faster than the probe)
HOLD_FROM = 0.95  # a schedule is stretched when what is left of it would take less of the time left
HOLD_AIM = 0.975  # of the time left that a stretched schedule aims to fill
HOLD_UNTIL = 0.85  # of the plan's steps: the rest is never stretched (what a sync misjudges, skipping mends)
EARLY = 0.02  # of the budget, at least, that the schedule would otherwise end early by
SKIP_GAIN = 2.0  # the steps that do not fit are skipped over the time left divided by this
UNPACED = {"held": 0, "hold_rate": 0.0, "hold_credit": 0.0, "budget_spent": None}  # the state of a run without one


@dataclass(frozen=True)
class Pace:
    """What the pacer answers at a sync: move the schedule ``skip`` steps ahead now; it holds
    the schedule for ``hold`` (a share) of the coming steps."""

    skip: int = 0
    hold: float = 0.0


class Pacer:
    """Keeps a planned run to its time (see the module's docstring), and counts what it did to
    the schedule. ``spent``: seconds of the budget used before this session (a resumed run);
    ``start``: when this session began, on ``clock``; ``step_tokens``: the tokens of one
    optimiser step, all processes together; ``dist``: the processes, of which rank 0 decides."""

    def __init__(self, plan: BudgetPlan, spent: float = 0.0, start: float | None = None,
                 clock: Clock = time.monotonic, *, step_tokens: float, dist: Distributed | None = None):
        self.plan, self.clock = plan, clock
        self.dist = dist or Distributed()
        self.step_tokens = step_tokens
        self.start = clock() if start is None else start
        self.spent_before = spent
        self.deadline = self.start + plan.limit - spent
        self.valid_s = plan.valid_s
        self.validating = 0.0  # seconds of this session spent validating
        self.window = min(max(0.05 * plan.budget, 1.0), 60.0)  # seconds of training the speed is taken over
        self.marks: deque[tuple[float, int]] = deque()  # (training seconds, optimiser steps) at syncs
        self.tail = 1 + math.ceil(TAIL * plan.steps)  # the last steps are trained, never skipped
        self.hold_rate = 0.0  # share of the coming steps that leave the schedule where it is
        self.hold_credit = 0.0
        self.held = 0  # steps trained while the schedule waited
        self.asked_at: float | None = None  # when ``pace`` was last asked (rank 0)

    @property
    def hard_deadline(self) -> float:
        """When training stops whatever the plan says, so that the last validation ends in time."""
        return self.deadline - self.valid_s

    def spent(self) -> float:
        return self.spent_before + self.clock() - self.start

    def left(self) -> float:
        return self.deadline - self.clock()

    def after_step(self) -> bool:
        """Whether the step just trained moves the schedule on: ``hold_rate`` of the steps do
        not, evenly spread (they train at the rate of the moment), so a run on a machine faster
        than its probe stretches its schedule over the time it has."""
        self.hold_credit += self.hold_rate
        if self.hold_credit < 1:
            return True
        self.hold_credit -= 1
        self.held += 1
        return False

    def validated(self, seconds: float) -> None:
        """A validation (and the saves after it) took ``seconds``: expect as much of the next. The
        first of a session may include what happens once (imports, caches): it counts for at
        most twice what the plan expected."""
        first = self.validating == 0
        self.validating += seconds
        self.valid_s = min(seconds, 2 * self.plan.valid_s) if first else seconds

    def step_seconds(self, step: int) -> tuple[float, bool]:
        """Seconds a step takes: over the last ``window`` seconds of training (True), or as the
        probe said until that much has been seen (False)."""
        now = self.clock() - self.validating
        self.marks.append((now, step))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.window:
            self.marks.popleft()
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        probe = self.step_tokens / self.plan.tokens_per_s
        if t1 - t0 < 0.5 * self.window or s1 == s0:
            return probe, False
        return (t1 - t0) / (s1 - s0), True

    def pace(self, at: Position) -> Pace:
        """How far the schedule must move ahead for what is left of it to fit in the time left,
        or how much of the coming training it can wait (only in its first ``HOLD_UNTIL``, and
        only on a measured speed), with training at ``at``; rank 0's answer, on every rank
        (every rank asks at the same batches). The pacer holds that share of the coming steps
        itself (``after_step``); the skip is the loop's to make."""
        skip, hold = 0, 0.0
        if self.dist.is_main:
            step_s, measured = self.step_seconds(at.step)
            steps_left = self.plan.steps - at.plan_step
            rows_left = sum(1 for v in self.plan.valid_at if v > at.row_step and v >= at.plan_step)
            time_left = self.left() - SLACK * 0.5 * self.plan.budget - rows_left * self.valid_s
            needed = steps_left * step_s
            now = self.clock()
            since, self.asked_at = now - (now if self.asked_at is None else self.asked_at), now
            if needed > time_left:  # the steps that do not fit, over half the time left: this sync's share
                fits = max(self.tail, math.floor(time_left / step_s))
                share = 1.0 if time_left <= SKIP_GAIN * since else SKIP_GAIN * since / time_left
                skip = max(0, math.ceil((steps_left - fits) * share))
            elif (measured and self.plan.asked is None and at.plan_step < HOLD_UNTIL * self.plan.steps
                  and needed < HOLD_FROM * time_left and time_left - needed > EARLY * self.plan.budget):
                hold = min(MAX_HOLD, 1 - needed / (HOLD_AIM * time_left))
        pace = Pace(int(self.dist.from_main(skip)), float(self.dist.from_main(hold)))
        self.hold_rate = pace.hold
        return pace

    def state(self) -> dict[str, Any]:
        """What a resumed session goes on from: the holding, and the budget spent so far."""
        return {"held": self.held, "hold_rate": self.hold_rate, "hold_credit": self.hold_credit,
                "budget_spent": self.spent()}

    def load_state(self, info: dict[str, Any]) -> None:
        """Go on holding where ``state`` left off (the budget spent is the constructor's)."""
        self.held, self.hold_rate = info.get("held", 0), info.get("hold_rate", 0.0)
        self.hold_credit = info.get("hold_credit", 0.0)
