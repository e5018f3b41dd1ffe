"""``--budget``: time turned into optimiser steps once, from a measured probe.

A probe (rnnlm.train.probe) trains a few batches of a throwaway copy of the model and scores a
few validation batches, which gives the machine's speed for this model and batch. ``make_plan``
turns the time left into a number of steps for the whole schedule, spreads the phases, SGDR
cycles and validations over them, and counts the validations' time; the plan is saved with the
run (``RunConfig.plan``), so a resumed run and every torchrun process follow it step for step.
A machine that turns out slower or faster than the probe said is handled while training runs,
by the pacer (rnnlm.train.pacing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from rnnlm.config import BudgetPlan, RunConfig, duration_text
from rnnlm.data.batching import StreamBatches
from rnnlm.data.textdata import TextData
from rnnlm.errors import SettingError
from rnnlm.models.recurrent import parameter_count

Clock = Callable[[], float]
VALID_SHARE = 0.04  # of the budget the plan spends on validating, at least one validation (the last)
PASS_SHARE = 0.02  # of the budget one validation may take: a longer split is validated on a sample of it
MIN_VALID_TOKENS = 50_000  # validated on, at least (or the whole split)
MAX_VALIDATIONS = 20
SAVE_BYTES_PER_S = 200e6  # for the estimate of what the saves after a validation take
SLACK = 0.01  # of the budget kept free for what the plan does not count


@dataclass
class Speed:
    """What a probe measured, on the clock of the budget."""

    tokens_per_s: float  # training, all processes together
    valid_s: float  # one pass over the validation split
    seconds: float  # the probe itself


def save_seconds(params: int) -> float:
    """About what the saves after a validation take: weights twice (best, last) and the
    training state (weights and Adam's two moments), in float32."""
    return 0.05 + 4 * params * 5 / SAVE_BYTES_PER_S


def sgdr_cycles(steps: int, shortest: int, mult: int) -> tuple[int, int]:
    """The first cycle of as many SGDR cycles (each ``mult`` times the one before) as fit in
    ``steps`` with the first at least ``shortest`` steps long, and the steps they use (whole
    cycles only, so the rate ends annealed)."""
    cycles = 1
    while True:
        more = cycles + 1
        total = more if mult == 1 else (mult**more - 1) // (mult - 1)
        if steps // total < shortest:
            break
        cycles = more
    total = cycles if mult == 1 else (mult**cycles - 1) // (mult - 1)
    first = max(1, steps // total)
    return first, first * total


def cycle_ends(first: int, mult: int, steps: int) -> list[int]:
    ends, end, length = [], 0, first
    while end + length <= steps:
        end += length
        ends.append(end)
        length *= mult
    return ends


def spread(steps: int, weights: list[int]) -> list[int]:
    """``steps`` split in proportion to ``weights``, each part at least 1, adding up exactly."""
    total, parts, done = sum(weights), [], 0
    for i, w in enumerate(weights):
        end = steps if i == len(weights) - 1 else round(steps * sum(weights[: i + 1]) / total)
        parts.append(max(1, end - done))
        done += parts[-1]
    return parts


def make_plan(config: RunConfig, data: TextData, speed: Speed, setup_s: float, chosen: list[str] | None = None,
              recipe: str | None = None, row_s: float = 0.0, max_steps: int | None = None) -> BudgetPlan:
    """The steps that fit in the budget left after ``setup_s`` at the measured speed, with the
    validations' time taken off: the phases in proportion to their epochs, whole SGDR cycles,
    validations about evenly spaced (at epoch ends when epochs are shorter than the spacing),
    at each phase's and cycle's end and at the very end. ``row_s``: what else each validation
    brings (the loss plot's drawing). A validation split too long to score in ``PASS_SHARE`` of
    the budget is validated on about ``valid_tokens`` of its tokens, each validation stream
    reading the beginning of its part of the split (``rnnlm evaluate`` scores all).
    Where more than ``max_steps`` fit, the plan is that of a budget cut to about their time (the
    run ends early), the budget given kept as ``asked``; such a plan validates about once an
    epoch where the time it leaves holds those validations (the best row of a corpus that
    over-fits is then found to the epoch)."""
    def planned(budget: float, validations: int = 1) -> BudgetPlan:
        train = replace(config.train, budget=budget)
        return plan_steps(replace(config, train=train), data, speed, setup_s, chosen, recipe, row_s, validations)

    asked = config.train.budget
    plan = planned(asked)
    if max_steps is None or plan.steps <= max_steps:
        return plan
    plan = longest_within(planned, setup_s, asked, plan, max_steps)
    batches = StreamBatches(data.train_ids, config.train.bs, config.train.bptt)
    return replace(validated_often(plan, planned, batches, speed.tokens_per_s, asked, max_steps), asked=asked)


def longest_within(planned: Callable[[float], BudgetPlan], setup_s: float, asked: float, whole: BudgetPlan,
                   max_steps: int) -> BudgetPlan:
    """The plan of most steps, at most ``max_steps``, found by halving the time between ``setup_s``
    and ``asked`` (whose plan, ``whole``, has more). The steps a time holds are not proportional to
    it (a validation costs the same in less time), and not always monotonic in it (validations
    fall at epoch ends where epochs are short), so the search keeps the best plan it met."""
    short, long, best = setup_s, asked, None
    end = setup_s + (asked - setup_s) * max_steps / whole.steps  # the share: close where validations cost little
    for _ in range(40):
        try:
            plan = planned(end)
        except SettingError:  # too short for one step
            plan = None
        if plan is not None and plan.steps > max_steps:
            long = end
        else:
            short = end
            if plan is not None and (best is None or plan.steps > best.steps):
                best = plan
            if best is not None and best.steps >= max_steps * (1 - SLACK):
                break
        end = (short + long) / 2
    return best if best is not None else planned(long)


def validated_often(plan: BudgetPlan, planned: Callable[[float, int], BudgetPlan], batches: StreamBatches,
                    tokens_per_s: float, asked: float, max_steps: int) -> BudgetPlan:
    """``plan`` (one that ends early, at most ``max_steps``) with a validation about every epoch of
    ``batches``, in a longer time of its own (``planned(budget, validations)``), where the budget
    ``asked`` holds them with the steps of ``plan`` to ``max_steps``; else ``plan``."""
    validations = min(MAX_VALIDATIONS, math.ceil(plan.steps / len(batches)))
    if len(plan.valid_at) >= validations:
        return plan
    step_s = batches.tokens / len(batches) / tokens_per_s
    end = plan.budget + (validations - len(plan.valid_at)) * plan.valid_s / (1 - SLACK)
    short, long = None, None  # times found to hold too few steps and too many
    for _ in range(12):  # a longer time may validate on more of a long split, or fewer at epoch ends:
        often = planned(end, validations)  # add or take off what the difference takes, then halve the gap
        if plan.steps <= often.steps <= max_steps:
            return often if often.budget <= asked else plan
        if often.steps < plan.steps:
            short = end
        else:
            long = end
        if short is not None and long is not None:
            end = (short + long) / 2
        else:
            missing = plan.steps - often.steps if often.steps < plan.steps else max_steps - often.steps
            end += (missing * step_s + math.copysign(1e-6, missing)) / (1 - SLACK)
    return plan


def plan_steps(config: RunConfig, data: TextData, speed: Speed, setup_s: float, chosen: list[str] | None,
               recipe: str | None, row_s: float, min_validations: int = 1) -> BudgetPlan:
    t = config.train
    batches = StreamBatches(data.train_ids, t.bs, t.bptt)
    n = len(batches)
    step_s = batches.tokens / n / speed.tokens_per_s
    left = t.budget - setup_s
    held_out = len(data.valid_ids)
    valid_tokens = None
    if speed.valid_s > PASS_SHARE * left and held_out > MIN_VALID_TOKENS:
        valid_tokens = max(MIN_VALID_TOKENS, math.floor(held_out * PASS_SHARE * left / speed.valid_s))
    scored = held_out if valid_tokens is None else valid_tokens
    valid_s = speed.valid_s * scored / max(held_out, 1)
    valid_s += save_seconds(parameter_count(len(data.vocab), config.model)) + row_s
    reserve = SLACK * t.budget + 2 * step_s
    validations = max(min_validations, min(MAX_VALIDATIONS, int(VALID_SHARE * left / max(valid_s, 1e-9))))
    for _ in range(3):  # phase and cycle ends may add validations: count them, and plan again
        steps = math.floor((left - validations * valid_s - reserve) / step_s)
        if steps < 1:
            raise SettingError("budget", too_short(t.budget, setup_s, step_s, valid_s))
        plan = lay_out(config, steps, n, validations)
        if len(plan[2]) <= validations:
            break
        validations = len(plan[2])
    phases, cycles, valid_at = plan
    return BudgetPlan(t.budget, sum(s for _, s in phases), phases, valid_at, speed.tokens_per_s, valid_s, setup_s,
                      cycles, chosen, recipe, valid_tokens)


def lay_out(config: RunConfig, steps: int, n: int, validations: int
            ) -> tuple[list[tuple[float, int]], list[int] | None, list[int]]:
    """Phases as (rate, steps), the first SGDR cycle of each (or None), and the validation steps."""
    t = config.train
    rates = t.plan()
    if steps < len(rates):
        raise SettingError("budget", f"{{budget}} {duration_text(t.budget)} fits {steps} steps, fewer than the "
                                     f"{len(rates)} phases of {{lr}}; give a longer budget or fewer phases")
    parts = spread(steps, [e for _, e in rates])
    cycles = None
    ends = []
    if t.schedule_name == "sgdr":
        cycles, used = [], []
        for part in parts:
            first, fits = sgdr_cycles(part, min(t.cycle_len * n, part), t.cycle_mult)
            cycles.append(first)
            used.append(fits)
        parts = used
        start = 0
        for first, part in zip(cycles, parts):
            ends += [start + e for e in cycle_ends(first, t.cycle_mult, part)]
            start += part
    total = sum(parts)
    every = math.ceil(total / validations)
    if every >= n:
        every = max(1, round(every / n)) * n
    phase_ends = [sum(parts[: i + 1]) for i in range(len(parts))]
    cadence = range(every, total - every // 2, every)  # none just before the last
    valid_at = sorted({*cadence, *phase_ends, *ends, total})
    return [(lr, part) for (lr, _), part in zip(rates, parts)], cycles, valid_at


def too_short(budget: float, setup_s: float, step_s: float, valid_s: float) -> str:
    need = setup_s + (2 + 2) * step_s + valid_s + SLACK * budget
    return (f"{{budget}} {duration_text(budget)} is too short: reading the corpus and the probe took {setup_s:.1f} s, "
            f"and one batch ({step_s:.2f} s) and one validation ({valid_s:.1f} s) do not fit in what is left; "
            f"give at least {duration_text(math.ceil(need * 1.2))}")
