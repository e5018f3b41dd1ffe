"""Training recipes of the lessons: an optimiser and phases of learning rates.

The Nietzsche notebooks make an ``optim.Adam`` and call ``fit`` several times, changing the rate
in between (``set_lrs``): one :class:`~rnnlm.train.schedules.Phase` per call. The LSTM adds
cosine annealing with warm restarts (fastai's ``CosAnneal`` with ``cycle_mult=2``, here
``CosineAnnealingWarmRestarts``), saving the weights at the end of every cycle. The
human-numbers notebook uses fastai v1's ``fit_one_cycle`` (here ``OneCycleLR``) with fastai
v1's default optimiser: Adam with betas (0.9, 0.99) and decoupled weight decay 0.01
(``AdamW``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import torch

from rnnlm.train.schedules import Phase


@dataclass(frozen=True)
class LessonRecipe:
    phases: tuple[Phase, ...]
    optimizer: str = "adam"  # "adam": torch Adam, L2 weight decay; "adamw": fastai v1's defaults
    wd: float = 0.0

    def describe(self) -> str:
        wd = f", wd {self.wd:g}" if self.wd else ""
        return f"{self.optimizer}{wd}: " + ", then ".join(p.describe() for p in self.phases)

    def scaled(self, factor: float) -> "LessonRecipe":
        """The same recipe with every phase ``factor`` times as long (and SGDR cycles with it)."""
        phases = tuple(replace(p, epochs=p.epochs * factor, cycle_len=p.cycle_len * factor)
                       for p in self.phases)
        return replace(self, phases=phases)

    @property
    def epochs(self) -> float:
        return sum(p.epochs for p in self.phases)


def make_optimizer(recipe: LessonRecipe, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    lr = recipe.phases[0].lr
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=recipe.wd)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=recipe.wd)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
