"""Choosing the next token of many streams at once, each with its own settings and randomness.

Each stream draws with its own random source (a ``random.Random`` seeded by the stream's seed):
the draw is an inverse-CDF lookup of one uniform number in the stream's own distribution, so a
stream's tokens depend on its seed and its text alone, never on which other streams share the
batch. Every row is computed on its own, vectorised over the batch: temperature, then top-k,
then top-p (nucleus), then the draw; greedy rows take the most likely token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch

from rnnlm.errors import invalid
from rnnlm.generation.scripted import scripted

MAX_SAMPLING_SEED = 2**64 - 1  # seeds are taken up to here (the range OpenAI-style clients send)
MIN_TEMPERATURE = float(torch.finfo(torch.float32).tiny)  # the least temperature whose division stays finite


@dataclass(frozen=True)
class Sampling:
    """How one stream picks its next token."""

    temperature: float = 1.0
    top_k: int | None = None  # only the k most likely tokens
    top_p: float | None = None  # only the most likely tokens that hold this much probability
    greedy: bool = False  # always the most likely token

    def __post_init__(self) -> None:
        """A positive temperature too small for float32 (where the logits are divided by it) is
        the least one that is not: it draws the most likely token, as any tiny temperature does."""
        if 0 < self.temperature < MIN_TEMPERATURE:
            object.__setattr__(self, "temperature", MIN_TEMPERATURE)

    def validate(self) -> None:
        if not 0 < self.temperature < math.inf:
            raise invalid("temperature", f"must be a finite number > 0 (got {self.temperature})")
        if self.top_k is not None and self.top_k < 1:
            raise invalid("top_k", f"must be >= 1 (got {self.top_k})")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise invalid("top_p", f"must be in (0, 1] (got {self.top_p})")

    @property
    def truncates(self) -> bool:
        return self.top_k is not None or (self.top_p is not None and self.top_p < 1.0)

    @property
    def by_temperature(self) -> bool:
        """Drawn by its temperature alone: not greedy, nothing cut by top-k or top-p."""
        return not self.greedy and not self.truncates


def draw(logits: torch.Tensor, settings: Sequence[Sampling], uniforms: Sequence[float],
         banned: torch.Tensor | None = None) -> torch.Tensor:
    """Next token ids (N,) from ``logits`` (N, V), row i drawn with ``settings[i]`` by the
    uniform number ``uniforms[i]`` in [0, 1). Tokens whose logit is -inf, and those ``banned``
    (V,) marks, are never drawn. Rows that all draw by temperature alone (the usual case) are
    drawn in one TorchScript call (``rnnlm.generation.scripted``): the same numbers, and a
    server's worker gives the GIL up once."""
    greedy = [s.greedy for s in settings]
    temperatures = [s.temperature for s in settings]
    if all(s.by_temperature for s in settings):
        return scripted(draw_by_temperature)(logits, banned, temperatures, [float(u) for u in uniforms])
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    logits = logits.float()
    if all(greedy):
        return logits.argmax(-1)
    scaled = scaled_logits(logits, temperatures)
    if any(s.truncates for s in settings):
        scaled = scaled.masked_fill(outside_top(scaled, settings), float("-inf"))
    ids = inverse_cdf(scaled, list(uniforms))
    if any(greedy):
        ids = torch.where(torch.tensor(greedy, device=ids.device), logits.argmax(-1), ids)
    return ids


def draw_by_temperature(logits: torch.Tensor, banned: Optional[torch.Tensor], temperatures: List[float],
                        uniforms: List[float]) -> torch.Tensor:
    """``draw`` for rows that neither truncate nor take the most likely token."""
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    return inverse_cdf(scaled_logits(logits.float(), temperatures), uniforms)


def scaled_logits(logits: torch.Tensor, temperatures: List[float]) -> torch.Tensor:
    """(N, V) logits shifted by their maximum (no overflow at a tiny temperature), then divided
    by each row's temperature."""
    temperature = torch.tensor(temperatures, dtype=torch.float32, device=logits.device)
    return (logits - logits.amax(-1, keepdim=True)) / temperature[:, None]


def inverse_cdf(scaled: torch.Tensor, uniforms: List[float]) -> torch.Tensor:
    """Row i's token: the first whose cumulative probability passes ``uniforms[i]`` of the total."""
    cdf = scaled.softmax(-1).cumsum(-1)  # (N, V), in vocab order whatever the settings: rows stay independent
    total = cdf[:, -1:]
    target = torch.tensor(uniforms, dtype=cdf.dtype, device=cdf.device)[:, None] * total
    target = torch.minimum(target, torch.nextafter(total, torch.zeros_like(total)))  # u near 1 rounds to the total
    return torch.searchsorted(cdf, target, right=True).squeeze(-1)  # the first token whose cdf passes the target


def draw_one(logits: torch.Tensor, sampling: Sampling, uniform: float) -> int:
    """``draw`` for one row, the same token for the same uniform number: ``logits`` (V,), banned
    tokens already -inf. The search of the cumulative distribution runs in numpy on the tensor's
    own memory, so the only torch calls are the softmax and its cumulative sum (on the CPU; other
    devices, and any setting but temperature 1, go through ``draw``)."""
    if not sampling.by_temperature or sampling.temperature != 1.0 or logits.device.type != "cpu":
        return int(draw(logits[None], [sampling], [uniform])[0])
    cdf = logits.float().softmax(0).cumsum(0).numpy()  # (V,); draw's shift by the maximum is softmax's own
    total = cdf[-1]
    target = np.float32(uniform) * total
    if target >= total:  # u near 1 rounds to the total: the largest float32 below it, as in draw
        target = np.nextafter(total, np.float32(0))
    return int(np.searchsorted(cdf, target, side="right"))


def outside_top(logits: torch.Tensor, settings: Sequence[Sampling]) -> torch.Tensor:
    """A mask (N, V) of the tokens outside each row's top-k and top-p. The most likely token is
    always inside (a top_p below float32's resolution would otherwise leave none)."""
    vocab, device = logits.shape[-1], logits.device
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    k = torch.tensor([min(s.top_k or vocab, vocab) for s in settings], device=device)  # a k beyond V: all
    outside = torch.arange(vocab, device=device)[None, :] >= k[:, None]  # by rank
    p = torch.tensor([1.0 if s.top_p is None else s.top_p for s in settings], device=device)
    if bool((p < 1).any()):
        probs = sorted_logits.masked_fill(outside, float("-inf")).softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
        outside |= before >= p[:, None]
    outside[:, 0] = False
    return torch.empty_like(outside).scatter_(-1, order, outside)  # back from rank to vocab order
