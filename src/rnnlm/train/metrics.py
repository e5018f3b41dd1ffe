"""Measuring a model on a token stream: loss in nats, perplexity, bits, next-token accuracy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from rnnlm.data.batching import StreamBatches
from rnnlm.models import detach_state


@dataclass
class Scores:
    loss: float  # mean cross-entropy, nats per token
    accuracy: float  # how often the most likely next token is the right one
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bits(self) -> float:
        """Bits per token (bits per character at character level)."""
        return self.loss / math.log(2)

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "perplexity": self.perplexity, "bits": self.bits}


def stream_batches_for_eval(ids, bs: int, bptt: int) -> StreamBatches:
    """Stateful evaluation over a whole split; fewer streams when the split is short."""
    streams = max(1, min(bs, (len(ids) - 1) // max(bptt, 1)))
    return StreamBatches(ids, streams, bptt)


@torch.inference_mode()
def evaluate_stream(model: torch.nn.Module, batches: StreamBatches, device: torch.device) -> Scores:
    """Run statefully over every batch, carrying the hidden state from one to the next."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    state = None
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits, state = model(x, state)
        state = detach_state(state)
        flat = logits.reshape(-1, logits.shape[-1]).float()
        loss_sum += F.cross_entropy(flat, y.reshape(-1), reduction="sum").double()
        correct += (flat.argmax(-1) == y.reshape(-1)).sum()
        count += y.numel()
    model.train(was_training)
    if count == 0:
        return Scores(float("nan"), float("nan"), 0)
    return Scores(loss_sum.item() / count, correct.item() / count, count)
