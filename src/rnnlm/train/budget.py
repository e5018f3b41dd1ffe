"""``--budget``: time turned into optimiser steps once, with a short measured probe.

A probe trains a few batches of a throwaway copy of the model (after a warm-up) and scores a few
validation batches, which gives the machine's speed for this model and batch. ``make_plan``
turns the time left into a number of steps for the whole schedule, spreads the phases, SGDR
cycles and validations over them, and counts the validations' time; the plan is saved with the
run (``RunConfig.plan``), so a resumed run and every torchrun process follow it step for step.

A machine that turns out slower or faster than the probe said (other work started or stopped,
the run resumed on another machine) is handled by the ``Pacer``: where training syncs anyway, it
compares the steps left with the time left at the speed of the last few seconds. When they no
longer fit, it moves the schedule ahead (``Learner.skip_ahead``); when they fit with time to
spare, it stretches the schedule: a share of the coming steps train at the rate of the moment
while the schedule waits (``Learner.hold_rate``). Either way the rate anneals to its end, and the
last validation comes, when the time is up.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import torch

from rnnlm.config import BudgetPlan, RunConfig, duration_text
from rnnlm.data.batching import StreamBatches
from rnnlm.data.textdata import TextData
from rnnlm.errors import RnnlmError
from rnnlm.evaluation.streams import stream_batches_for_eval
from rnnlm.models import RecurrentLM
from rnnlm.models.recurrent import parameter_count
from rnnlm.train.distributed import Distributed
from rnnlm.train.learner import Learner

Clock = Callable[[], float]
WARM_UP = 1  # batches run before the probe times one (the first builds the kernels)
PROBE_SHARE = 0.02  # of the budget, at most PROBE_SECONDS, for timing training batches
PROBE_SECONDS = 1.5
MAX_PROBE_BATCHES = 50
VALID_SHARE = 0.04  # of the budget the plan spends on validating, at least one validation (the last)
PASS_SHARE = 0.01  # of the budget one validation may take: a longer split is validated on its beginning
MIN_VALID_TOKENS = 50_000  # validated on, at least (or the whole split)
MAX_VALIDATIONS = 20
SAVE_BYTES_PER_S = 200e6  # for the estimate of what the saves after a validation take
SLACK = 0.01  # of the budget kept free for what the plan does not count
TAIL = 0.01  # of the plan's steps, at its end, that are trained however late it runs (the rate's last fall)
MAX_HOLD = 0.5  # of the steps, at most, that train while the schedule waits (a machine faster than the probe)
HOLD_FROM = 0.9  # a schedule is stretched when what is left of it would take less of the time left
HOLD_AIM = 0.95  # of the time left that a stretched schedule aims to fill
HOLD_UNTIL = 0.8  # of the plan's steps: the rest is never stretched (what a sync misjudges, skipping mends)
EARLY = 0.02  # of the budget, at least, that the schedule would otherwise end early by


@dataclass(frozen=True)
class Pace:
    """What the pacer asks at a sync: move the schedule ``skip`` steps ahead now, and train
    ``hold`` (a share) of the coming steps without moving it."""

    skip: int = 0
    hold: float = 0.0


@dataclass
class Speed:
    """What a probe measured, on the clock of the budget."""

    tokens_per_s: float  # training, all processes together
    valid_s: float  # one pass over the validation split
    seconds: float  # the probe itself


def probe_speed(config: RunConfig, data: TextData, device: torch.device, dist: Distributed, seconds: float,
                clock: Clock = time.monotonic, started: float | None = None) -> Speed:
    """Time training batches of a throwaway copy of ``config``'s model on ``data``, and a few
    validation batches. The random number generators are left as they were, so the run that
    follows is the one it would be without the probe. Under torchrun every process runs it
    (the batches train through DistributedDataParallel) and rank 0's timings count for all.
    ``started``: when the run began; a budget spent before the first batches are timed is
    refused at once."""
    t = config.train
    probe_began = clock()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model = RecurrentLM(len(data.vocab), config.model)
        batches = StreamBatches(data.train_ids, t.bs, t.bptt).shard(dist.rank, dist.world_size)
        learner = Learner(model, batches, None, device=device, lr=t.lr, wd=t.wd, clip=t.clip, ar=t.ar, tar=t.tar,
                          dist=dist)
        hidden = None

        def train_batch(k: int) -> torch.Tensor:
            nonlocal hidden
            x, y = (b.to(device) for b in batches.batch(k % len(batches)))
            loss, hidden = learner.train_step(x, y, hidden)
            return loss

        for k in range(WARM_UP):
            train_batch(k).item()
        start = clock()
        train_batch(WARM_UP).item()
        one = clock() - start
        budget = config.train.budget
        if started is not None and budget is not None and dist.from_main(float(clock() - started > budget)):
            spent = dist.from_main(clock() - started)
            raise RnnlmError(f"--budget {duration_text(budget)} is too short: reading the corpus and the first "
                             f"batches of the probe took {spent:.1f} s already (a batch: {one:.2f} s); give at least "
                             f"{duration_text(math.ceil(1.5 * (spent + 4 * one)))}")
        count = int(dist.from_main(min(MAX_PROBE_BATCHES, seconds // max(one, 1e-6))))
        if count:  # else the one batch took the probe's time already
            start = clock()
            torch.stack([train_batch(WARM_UP + 1 + k) for k in range(count)]).sum().item()  # waits for the device
            one = (clock() - start) / count
        per_batch = dist.from_main(one)
        tokens_per_batch = t.bs * t.bptt  # all ranks together
        valid_s = dist.from_main(time_validation(learner.model, data, t.bs, t.bptt, device, dist, clock))
    return Speed(tokens_per_batch / per_batch, valid_s, clock() - probe_began)


@torch.inference_mode()
def time_validation(model: torch.nn.Module, data: TextData, bs: int, bptt: int, device: torch.device,
                    dist: Distributed, clock: Clock, batches: int = 3) -> float:
    """Seconds one pass over this process's share of the validation split takes, from a few
    of its batches."""
    valid = stream_batches_for_eval(data.valid_ids, bs, bptt).shard(dist.rank, dist.world_size)
    if len(valid) == 0 or valid.bs == 0:
        return 0.0
    model.eval()
    state, timed, took = None, 0, 0.0
    for k in range(min(batches + 1, len(valid))):
        x, _ = valid.batch(k)
        start = clock()
        logits, state = model(x.to(device), state)
        logits.sum().item()
        if k:  # the first builds the kernels of inference
            took, timed = took + clock() - start, timed + x.numel()
    if not timed:
        return took
    return took / timed * valid.tokens


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
              recipe: str | None = None, row_s: float = 0.0) -> BudgetPlan:
    """The steps that fit in the budget left after ``setup_s`` at the measured speed, with the
    validations' time taken off: the phases in proportion to their epochs, whole SGDR cycles,
    validations about evenly spaced (at epoch ends when epochs are shorter than the spacing),
    at each phase's and cycle's end and at the very end. ``row_s``: what else each validation
    brings (the loss plot's drawing). A validation split too long to score in ``PASS_SHARE`` of
    the budget is validated on its first ``valid_tokens`` tokens (``rnnlm evaluate`` scores all)."""
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
    validations = max(1, min(MAX_VALIDATIONS, int(VALID_SHARE * left / max(valid_s, 1e-9))))
    for _ in range(3):  # phase and cycle ends may add validations: count them, and plan again
        steps = math.floor((left - validations * valid_s - reserve) / step_s)
        if steps < 1:
            raise RnnlmError(too_short(t.budget, setup_s, step_s, valid_s))
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
        raise RnnlmError(f"--budget {duration_text(t.budget)} fits {steps} steps, fewer than the {len(rates)} "
                         "phases of --lr; give a longer budget or fewer phases")
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
    return (f"--budget {duration_text(budget)} is too short: reading the corpus and the probe took {setup_s:.1f} s, "
            f"and one batch ({step_s:.2f} s) and one validation ({valid_s:.1f} s) do not fit in what is left; "
            f"give at least {duration_text(math.ceil(need * 1.2))}")


class Pacer:
    """Keeps a planned run to its time (see the module's docstring). ``spent``: seconds of the
    budget used before this session (a resumed run); ``start``: when this session began, on
    ``clock``."""

    def __init__(self, plan: BudgetPlan, spent: float = 0.0, start: float | None = None,
                 clock: Clock = time.monotonic):
        self.plan, self.clock = plan, clock
        self.start = clock() if start is None else start
        self.spent_before = spent
        self.deadline = self.start + plan.budget - spent
        self.valid_s = plan.valid_s
        self.validating = 0.0  # seconds of this session spent validating
        self.window = min(max(0.05 * plan.budget, 1.0), 60.0)  # seconds of training the speed is taken over
        self.marks: deque[tuple[float, int]] = deque()  # (training seconds, optimiser steps) at syncs
        self.tail = 1 + math.ceil(TAIL * plan.steps)  # the last steps are trained, never skipped

    @property
    def hard_deadline(self) -> float:
        """When training stops whatever the plan says, so that the last validation ends in time."""
        return self.deadline - self.valid_s

    def spent(self) -> float:
        return self.spent_before + self.clock() - self.start

    def left(self) -> float:
        return self.deadline - self.clock()

    def validated(self, seconds: float) -> None:
        """A validation (and the saves after it) took ``seconds``: expect as much of the next. The
        first of a session may include what happens once (imports, caches): it counts for at
        most twice what the plan expected."""
        first = self.validating == 0
        self.validating += seconds
        self.valid_s = min(seconds, 2 * self.plan.valid_s) if first else seconds

    def step_seconds(self, learner: Learner) -> tuple[float, bool]:
        """Seconds a step takes: over the last ``window`` seconds of training (True), or as the
        probe said until that much has been seen (False)."""
        now = self.clock() - self.validating
        self.marks.append((now, learner.step))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.window:
            self.marks.popleft()
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        probe = learner.train_data.tokens / max(len(learner.train_data), 1) * learner.dist.world_size
        probe /= self.plan.tokens_per_s
        if t1 - t0 < 0.5 * self.window or s1 == s0:
            return probe, False
        return (t1 - t0) / (s1 - s0), True

    def pace(self, learner: Learner) -> Pace:
        """How far the schedule must move ahead for what is left of it to fit in the time left,
        or how much of the coming training it can wait (only in its first ``HOLD_UNTIL``, and
        only on a measured speed); rank 0's answer, on every rank (every rank calls this at the
        same batches)."""
        skip, hold = 0, 0.0
        if learner.dist.is_main:
            step_s, measured = self.step_seconds(learner)
            steps_left = self.plan.steps - learner.plan_step
            rows_left = sum(1 for v in self.plan.valid_at if v > learner.row_step and v >= learner.plan_step)
            time_left = self.left() - SLACK * 0.5 * self.plan.budget - rows_left * self.valid_s
            needed = steps_left * step_s
            if needed > time_left:
                fits = max(self.tail, math.floor(time_left / step_s))
                skip = max(0, steps_left - fits)
            elif (measured and learner.plan_step < HOLD_UNTIL * self.plan.steps and needed < HOLD_FROM * time_left
                  and time_left - needed > EARLY * self.plan.budget):
                hold = min(MAX_HOLD, 1 - needed / (HOLD_AIM * time_left))
        return Pace(int(learner.dist.from_main(skip)), float(learner.dist.from_main(hold)))


def describe_plan(config: RunConfig, data: TextData, speed: Speed, params: int, memory: str,
                  given: list[str] | None = None) -> str:
    """The plan, as printed before training starts."""
    plan, t, m = config.plan, config.train, config.model
    unit = {"char": "characters", "word": "words"}.get(data.tokenizer.level, "tokens")
    batches = StreamBatches(data.train_ids, t.bs, t.bptt)
    n = len(batches)
    tokens = round(plan.steps * batches.tokens / n)
    validations = len(plan.valid_at)
    lines = [
        f"plan for --budget {duration_text(plan.budget)}: {data.name}, {len(data.train_ids):,} training {unit} "
        f"({len(data.vocab)} tokens in the vocab), {len(data.valid_ids):,} held out"
        + (f", validated on the first {plan.valid_tokens:,} (a whole pass would take "
           f"{plan.valid_s * len(data.valid_ids) / plan.valid_tokens:.0f} s)" if plan.valid_tokens else ""),
        f"  model     {m.cell}, {m.layers} layer{'s' if m.layers > 1 else ''} of {m.hidden}, emb {m.emb}, dropout "
        f"{m.dropout:g}: {params:,} parameters; training needs about {memory}",
        f"  batches   bs {t.bs} x bptt {t.bptt} = {t.bs * t.bptt:,} tokens a step, {n:,} steps an epoch",
        f"  speed     {plan.tokens_per_s:,.0f} tokens/s measured (probe {speed.seconds:.1f} s; reading and probing "
        f"took {plan.setup_s:.1f} s); one validation about {plan.valid_s:.1f} s",
        f"  schedule  {schedule_text(config)} over {plan.steps:,} steps = {tokens:,} tokens = "
        f"{plan.steps / n:.1f} epochs that fit; validated {validations} time{'s' if validations > 1 else ''}"
        + (f", every {plan.valid_at[0]:,} steps" if validations > 2 else ""),
    ]
    if plan.chosen:
        lines.append(f"  chosen    {', '.join(plan.chosen)} from the recipe table (row: {plan.recipe})")
    if given:
        lines.append(f"  yours     {' '.join(given)}")
    return "\n".join(lines)


def schedule_text(config: RunConfig) -> str:
    t, plan = config.train, config.plan
    if len(plan.phases) > 1:
        parts = ", then ".join(f"lr {lr:g} for {steps:,} steps" for lr, steps in plan.phases)
        return f"{t.schedule_name} phases: {parts};"
    lr = plan.phases[0][0]
    if t.schedule_name == "onecycle":
        return f"onecycle up to lr {lr:g}, annealed to its end,"
    if t.schedule_name == "sgdr":
        cycles = cycle_ends(plan.cycle_steps[0], t.cycle_mult, plan.steps)
        lengths = [b - a for a, b in zip([0, *cycles], cycles)]
        return f"sgdr from lr {lr:g}, {len(lengths)} cycle{'s' if len(lengths) > 1 else ''} of " \
               f"{', '.join(f'{c:,}' for c in lengths)} steps,"
    return f"constant lr {lr:g}"
