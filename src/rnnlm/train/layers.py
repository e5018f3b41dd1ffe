"""A fine-tuned model's start and how its layers learn (ULMFiT, Howard and Ruder 2018).

The base's weights are loaded as they are; a vocab grown by new tokens gets new rows in the
embedding and the output layer, each the mean of the base's rows (old ids keep theirs). The
layers learn in groups: first the vocab's layers (embedding and head, where new tokens live)
at the full rate, then the recurrent layers from the top down, each at the rate of the one
above divided by ``layer_decay`` (discriminative rates); for the first ``freeze`` share of the
schedule only the first group trains (the recurrent layers wait while the head adapts to the
new text).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnlm.config import RunConfig
from rnnlm.models import RecurrentLM

VOCAB_ROWS = ("embedding.weight", "head.weight", "head.bias")  # tensors with one row a token


def grown_weights(weights: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """``weights`` for a vocab of ``vocab_size`` tokens (as many as theirs, or more): each new
    token's row of the embedding and the head is the mean of the rows there were."""
    grown = dict(weights)
    for name in VOCAB_ROWS:
        old = weights[name]  # (V_base, ...) one row a token
        extra = vocab_size - old.shape[0]
        if extra > 0:
            mean = old.mean(dim=0, keepdim=True)
            grown[name] = torch.cat([old, mean.expand(extra, *old.shape[1:])])
    return grown


def recurrent_layers(model: RecurrentLM) -> list[list[nn.Parameter]]:
    """The parameters of each recurrent layer, the bottom one first."""
    if isinstance(model.rnn, nn.ModuleList):  # locked dropout: one module a layer
        return [list(layer.parameters()) for layer in model.rnn]
    named = dict(model.rnn.named_parameters())
    return [[p for name, p in named.items() if name.endswith(f"_l{i}")] for i in range(model.config.layers)]


def layer_groups(model: RecurrentLM, layer_decay: float) -> list[dict]:
    """The optimiser's parameter groups: the vocab's layers at the full rate (``lr_scale`` 1),
    then the recurrent layers from the top down, each ``layer_decay`` times slower than the
    one above."""
    vocab_layers = list({id(p): p for p in (model.embedding.weight, model.head.weight, model.head.bias)}.values())
    groups = [{"params": vocab_layers, "lr_scale": 1.0}]
    for depth, layer in enumerate(reversed(recurrent_layers(model)), 1):
        groups.append({"params": layer, "lr_scale": layer_decay ** -depth})
    return groups


def fine_tune_groups(model: RecurrentLM, config: RunConfig, steps: int) -> tuple[list[dict] | None, int]:
    """The parameter groups of a fine-tuned run (None: one group, as a run from scratch has)
    and the schedule step until which its recurrent layers wait (of ``steps`` in all)."""
    ft = config.fine_tune
    if ft is None or (ft.layer_decay == 1 and ft.freeze == 0):
        return None, 0
    return layer_groups(model, ft.layer_decay), math.ceil(ft.freeze * steps)
