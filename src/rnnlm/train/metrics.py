"""Measuring a model on a token stream: loss in nats, perplexity, bits, next-token accuracy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from rnnlm.data.batching import StreamBatches
from rnnlm.models import detach_state
from rnnlm.train.distributed import Distributed


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
def evaluate_stream(model: torch.nn.Module, batches: StreamBatches, device: torch.device,
                    dist: Distributed | None = None) -> Scores:
    """Run statefully over every batch, carrying the hidden state from one to the next. Under
    torchrun (``dist``) each rank runs its own block of the streams and the sums are added up."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, right guesses, tokens
    state = None
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits, state = model(x, state)
        state = detach_state(state)
        flat = logits.reshape(-1, logits.shape[-1]).float()
        sums[0] += F.cross_entropy(flat, y.reshape(-1), reduction="sum").double()
        sums[1] += (flat.argmax(-1) == y.reshape(-1)).sum()
        sums[2] += y.numel()
    model.train(was_training)
    loss_sum, correct, count = (dist.sum(sums) if dist else sums).tolist()
    if count == 0:
        return Scores(float("nan"), float("nan"), 0)
    return Scores(loss_sum / count, correct / count, int(count))
