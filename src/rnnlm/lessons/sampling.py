"""Sampling the lesson way: re-read a window of the last characters for every new one.

``get_next`` feeds the window to the model from a zero state and takes the most likely next
token (the early notebooks) or draws it from the predicted distribution (the LSTM notebook);
``get_next_n`` slides the window: drop its first token, append the new one, repeat. Every new
token re-reads the whole window, and anything before the window is forgotten. rnnlm's own
generation (:mod:`rnnlm.generation.prompt`) feeds the prime once and then one token a step, carrying the
hidden state: with ``window=None`` here (the window grows and keeps everything) the two give the
same tokens, at O(n) instead of O(1) work per token.

Works with the lesson models (ids -> logits) and with ``RecurrentLM`` ((ids, state) -> (logits,
state)).
"""

from __future__ import annotations

import random

import torch

from rnnlm.generation.sampling import Sampling, draw
from rnnlm.lessons.models import Stateful


@torch.no_grad()
def next_logits(model: torch.nn.Module, window: list[int]) -> torch.Tensor:
    """Scores (vocab,) for the token after ``window``, read from a zero state."""
    if isinstance(model, Stateful):
        model.reset()
    device = next(model.parameters()).device
    out = model(torch.tensor([window], device=device))
    if isinstance(out, tuple):  # RecurrentLM: (logits, state)
        out = out[0]
    return out[0, -1] if out.dim() == 3 else out[0]


def get_next(model: torch.nn.Module, window: list[int], greedy: bool = True,
             rng: random.Random | None = None) -> int:
    """The next token id: the most likely one, or a draw from the predicted distribution when
    not greedy (the lessons' ``torch.multinomial``; here rnnlm's own draw, one uniform number of
    ``rng`` each, so that the same seed gives what ``rnnlm generate`` gives)."""
    logits = next_logits(model, window)
    if greedy:
        return int(logits.argmax())
    return int(draw(logits[None], [Sampling()], [(rng or random).random()]))


def get_next_n(model: torch.nn.Module, prime: list[int], n: int, *, greedy: bool = True,
               window: int | None = -1, rng: random.Random | None = None) -> list[int]:
    """``n`` new ids after ``prime``, sliding a window of ``window`` tokens (-1: the prime's
    length, as the lessons do; None: never drop anything)."""
    size = len(prime) if window == -1 else window
    context, new = list(prime), []
    was_training = model.training
    model.eval()
    for _ in range(n):
        token = get_next(model, context, greedy, rng)
        new.append(token)
        context.append(token)
        if size is not None:
            context = context[-size:]
    model.train(was_training)
    return new
