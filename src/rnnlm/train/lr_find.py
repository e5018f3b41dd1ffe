"""The learning-rate finder (Smith 2015, as in fastai): train for a few batches while the rate
grows exponentially from tiny to large, watch the loss fall and then blow up, pick a rate a
little before the minimum.

On a learner, the sweep leaves the model, the optimiser and the RNG states as it found them.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from rnnlm.config import RunConfig
from rnnlm.device import resolve_device
from rnnlm.errors import SettingError, invalid
from rnnlm.train.assembly import make_learner
from rnnlm.train.learner import Learner
from rnnlm.train.setup import load_data, resolve_config, seed_everything

MAX_BATCHES = 100_000


def ema(values: list[float], beta: float) -> list[float]:
    """Exponential moving average, bias-corrected (the first values are not pulled to zero)."""
    out, average = [], 0.0
    for i, v in enumerate(values):
        average = beta * average + (1 - beta) * v
        out.append(average / (1 - beta ** (i + 1)))
    return out


def zero_lag(values: list[float], beta: float) -> list[float]:
    """Smoothed forwards then backwards: no lag, so the minimum stays where the loss has it."""
    return ema(ema(values, beta)[::-1], beta)[::-1]


@dataclass
class LRFinding:
    lrs: list[float]
    losses: list[float]  # loss of each batch (nats/token)
    diverged: bool  # the sweep stopped because the loss blew up
    smoothing: float = 0.8
    smoothed: list[float] = field(init=False)  # the losses smoothed without lag

    def __post_init__(self) -> None:
        self.smoothed = zero_lag(self.losses, self.smoothing)

    @property
    def best_lr(self) -> float:
        """The rate at the lowest smoothed loss."""
        return self.lrs[min(range(len(self.smoothed)), key=self.smoothed.__getitem__)]

    @property
    def suggested_lr(self) -> float:
        """A tenth of ``best_lr``: the loss still falls fast there, well short of the blow-up."""
        return self.best_lr / 10

    def plot(self, path: str | Path | None, title: str = "") -> bytes:
        """The sweep drawn as PNG, written to ``path`` (None: not written); its bytes."""
        from rnnlm.train.plots import plot_lr_find

        return plot_lr_find(path, self.lrs, self.losses, self.smoothed, self.best_lr, self.suggested_lr, title)

    def _repr_png_(self) -> bytes:
        """The sweep, as a notebook shows it."""
        return self.plot(None)


def lr_find(
    learner: Learner,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    batches: int = 100,
    smoothing: float = 0.8,
    diverge: float = 4.0,
    progress: bool | None = None,
) -> LRFinding:
    """Sweep the rate from ``start`` to ``end`` over at most ``batches`` batches of the
    learner's training data (carrying the hidden state, as training does); stop once the loss,
    smoothed by an exponential moving average (``smoothing``), exceeds ``diverge`` times its
    minimum or stops being finite."""
    check_sweep(start, end, batches)
    model, optimizer = learner.model, learner.optimizer
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    cuda = [learner.device] if learner.device.type == "cuda" else []
    bar = tqdm(total=batches, desc="lr-find", unit="batch", leave=False,
               disable=not (sys.stderr.isatty() if progress is None else progress))
    try:
        with torch.random.fork_rng(devices=cuda):
            finding = _sweep(learner, start, end, batches, smoothing, diverge, bar)
    finally:
        bar.close()
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)
    if len(finding.lrs) < 2:
        raise SettingError("start", f"the loss was not finite from the first batches; try a lower {{start}} "
                                    f"(now {start:g})")
    return finding


def check_sweep(start: float, end: float, batches: int) -> None:
    if not (0 < start < end and math.isfinite(end)):
        raise SettingError("start", f"{{start}} must be > 0 and below {{end}}, a finite number (got {start} and {end})")
    if not 2 <= batches <= MAX_BATCHES:
        raise invalid("batches", f"must be in 2..{MAX_BATCHES} (got {batches})")


def _sweep(learner: Learner, start: float, end: float, batches: int, smoothing: float, diverge: float,
           bar: tqdm) -> LRFinding:
    lrs: list[float] = []
    losses: list[float] = []
    average, lowest, hidden = 0.0, math.inf, None
    learner.model.train()
    for i in range(batches):
        k = i % learner.batches_per_epoch
        if k == 0:
            hidden = None  # the streams start over
        lr = start * (end / start) ** (i / (batches - 1))
        for group in learner.optimizer.param_groups:
            group["lr"] = lr
        x, y = (t.to(learner.device) for t in learner.train_data.batch(k))
        loss, hidden = learner.train_step(x, y, hidden)
        value = loss.item()
        bar.update(1)
        if not math.isfinite(value):
            return LRFinding(lrs, losses, True, smoothing)
        lrs.append(lr)
        losses.append(value)
        average = smoothing * average + (1 - smoothing) * value
        current = average / (1 - smoothing ** (i + 1))
        lowest = min(lowest, current)
        if i > 5 and current > diverge * lowest:
            return LRFinding(lrs, losses, True, smoothing)
    return LRFinding(lrs, losses, False, smoothing)


def find_lr(config: RunConfig, **sweep) -> LRFinding:
    """The finder on a fresh model built from ``config`` (data, model, training step settings);
    writes nothing. ``sweep``: the keyword arguments of :func:`lr_find`."""
    check_sweep(sweep.get("start", 1e-7), sweep.get("end", 10.0), sweep.get("batches", 100))
    config = resolve_config(config)
    device = resolve_device(config.train.device)
    seed_everything(config.train.seed)
    config, data = load_data(config)
    return lr_find(make_learner(config, data, device), **sweep)
