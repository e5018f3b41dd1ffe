"""Measuring a model on a token stream: loss in nats, perplexity, bits per token and per
character, next-token accuracy.

Bits per character put every level on one scale: the split's total nats over the characters of
its text, in bits. Evaluation predicts every token of the split but the first (and the tail
shorter than the streams, see ``StreamBatches``); the total is the mean nats of those
predictions times the split's tokens. docs/levels.md says how characters are counted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.data.batching import StreamBatches
from rnnlm.distributed import Distributed
from rnnlm.models import detach_state


@dataclass(frozen=True)
class TextSize:
    """A split's length: its token ids, and the characters of its text."""

    tokens: int
    characters: int


def text_size(ids: np.ndarray, characters: int | None) -> TextSize | None:
    """The size of a split of ``ids`` whose text has ``characters`` (None: not known)."""
    return TextSize(len(ids), characters) if characters else None


@dataclass
class Scores:
    loss: float  # mean cross-entropy, nats per token
    accuracy: float  # how often the most likely next token is the right one
    tokens: int  # tokens predicted
    text: TextSize | None = None  # the split the tokens come from, when its characters are known
    documents: int | None = None  # a list's documents, each read alone (rnnlm.evaluation.documents)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bits(self) -> float:
        """Bits per token."""
        return self.loss / math.log(2)

    @property
    def bits_per_char(self) -> float:
        """Bits per character of the text (NaN when its characters are not known)."""
        if self.text is None:
            return math.nan
        return self.bits * self.text.tokens / self.text.characters

    @property
    def nats_per_char(self) -> float:
        """Nats per character of the text (NaN when its characters are not known)."""
        return self.bits_per_char * math.log(2)

    @property
    def loss_per_document(self) -> float:
        """Mean nats of a whole document, its end included (NaN when not read as documents)."""
        return self.loss * self.tokens / self.documents if self.documents else math.nan

    def as_dict(self) -> dict[str, float | int | None]:
        scores = {k: v for k, v in asdict(self).items() if k not in ("text", "documents")}
        out = {**scores, "perplexity": self.perplexity, "bits": self.bits, "bits_per_token": self.bits,
               "bits_per_char": None if self.text is None else self.bits_per_char,
               "characters": None if self.text is None else self.text.characters,
               "split_tokens": None if self.text is None else self.text.tokens}
        if self.documents is not None:  # a list's documents: the ends counted as characters
            out.update(documents=self.documents, loss_per_document=self.loss_per_document,
                       nats_per_char=None if self.text is None else self.nats_per_char)
        return out


def stream_batches_for_eval(ids: np.ndarray, bs: int, bptt: int) -> StreamBatches:
    """Stateful evaluation over a whole split; fewer streams when the split is short."""
    streams = max(1, min(bs, (len(ids) - 1) // max(bptt, 1)))
    return StreamBatches(ids, streams, bptt)


@torch.inference_mode()
def evaluate_stream(model: torch.nn.Module, batches: StreamBatches, device: torch.device,
                    dist: Distributed | None = None, text: TextSize | None = None) -> Scores:
    """Run statefully over every batch, carrying the hidden state from one to the next. Under
    torchrun (``dist``) each rank runs its own block of the streams and the sums are added up.
    ``text``: the size of the whole split, for bits per character."""
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
        return Scores(float("nan"), float("nan"), 0, text)
    return Scores(loss_sum / count, correct / count, int(count), text)
