"""Learning-rate schedules, all from ``torch.optim.lr_scheduler`` and stepped once a batch."""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    lr: float,
    total_steps: int,
    steps_per_epoch: int,
    cycle_len: int = 1,
    cycle_mult: int = 2,
) -> lr_scheduler.LRScheduler:
    """``constant``; ``onecycle`` (warm up then anneal, as fastai's fit_one_cycle);
    ``sgdr`` (cosine annealing with warm restarts: the first cycle lasts ``cycle_len`` epochs,
    each next one ``cycle_mult`` times longer)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr
    if schedule == "constant":
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if schedule == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 2))
    if schedule == "sgdr":
        return lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=cycle_len * steps_per_epoch, T_mult=cycle_mult
        )
    raise ValueError(f"unknown schedule {schedule!r}")


def is_sgdr_cycle_end(epochs_into_phase: int, cycle_len: int, cycle_mult: int) -> bool:
    """Whether an SGDR cycle ends after this many epochs of its phase (cycles of cycle_len,
    cycle_len * cycle_mult, cycle_len * cycle_mult ** 2, ... epochs)."""
    end, length = 0, cycle_len
    while end < epochs_into_phase:
        end, length = end + length, length * cycle_mult
    return end == epochs_into_phase > 0
