"""Dropout whose mask on the CPU comes from random bits, two entries to a 32-bit draw.

On the CPU torch's dropout draws every entry's Bernoulli on its own, and for the output of an
LSTM at a training batch (bs x bptt x H, a million entries at 64 x 32 x 512) that draw is a large
share of the whole step (benchmarks/README.md, "Dropout from random bits"). Here each entry's fate
is 15 random bits compared with a threshold: kept with probability ``keep / 32768``, ``keep`` the
nearest whole number to ``(1 - p) 32768``, and scaled by the inverse of that exact probability,
so the expectation holds. Elsewhere (CUDA) it is ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 1 << 15  # the values of 15 random bits


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``x`` with each entry zeroed with probability ``p`` (to 1 / 32768) and the others scaled
    so that the expectation is ``x``; ``x`` itself where not ``training`` or ``p`` is 0."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    keep = round((1 - p) * LEVELS)
    if keep == 0:
        return x * 0
    n = x.numel()
    bits = torch.empty((n + 1) // 2, dtype=torch.int32).random_()  # uniform on [0, 2^31): 31 random bits each
    draws = torch.cat([bits & (LEVELS - 1), bits >> 16])[:n]  # bits 0-14 and 16-30: (n,)
    return x * (draws < keep).view(x.shape) * (LEVELS / keep)


class Dropout(nn.Module):
    """``nn.Dropout`` by ``dropout``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
