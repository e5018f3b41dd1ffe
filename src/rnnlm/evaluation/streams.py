"""Measuring a model on a token stream: loss in nats, perplexity, bits per token and per
character, next-token accuracy.

Bits per character put every level on one scale: the split's total nats over the characters of
its text, in bits. Evaluation predicts every token of the split but the first (and the tail
shorter than the streams, see ``StreamBatches``); the total is the mean nats of those
predictions times the split's tokens. docs/levels.md says how characters are counted.

Many streams read a split faster than one, but each starts in mid-text; from a zero state its
first predictions are worse than those of one stream reading the text through, and by how much
depends on the model (a word LSTM lost 1.2%, a GRU trained without clipping far more). So each
stream but the first warms up: it reads the ``WARMUP_TOKENS`` before its start, uncounted, and
starts from the state they leave, near the one a single stream would have there. Some states
remember thousands of tokens (the demo's counting model read 2.6% worse after 203 tokens of
warm-up, 0.03% after 2,048), so the warm-up is long, and the streams fewer and longer, each at
least ``MIN_STREAM_TOKENS``, so that warming up adds a quarter of the split at most. Each call of
the model reads ``PIECE_TOKENS`` of all the streams together, longer pieces where the streams are
fewer, so a pass costs about what 64 streams warmed up on 512 tokens did (benchmarks/README.md,
"Validation warm-up").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.data.batching import StreamBatches
from rnnlm.distributed import Distributed
from rnnlm.models import State, detach_state

WARMUP_TOKENS = 2048  # read before each stream's start (at most the stream's length)
MIN_STREAM_TOKENS = 8192  # a stream's length, at least, where the split has the tokens for one
PIECE_TOKENS = 1024  # tokens of all the streams together one call of the model reads, at least
WARMUP_PIECE = 128  # tokens the warm-up runs through the model at a time


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


class EvalStreams(StreamBatches):
    """Stream batches whose streams warm up before they are read: each but the first starts from
    the state its ``warmup`` tokens before its start leave (the end of the stream before it, at
    most all of it); the first has nothing before it and starts from zeros, as one stream does.
    ``length``: each stream reads only its first ``length`` tokens, so the streams read a sample
    of the split spread over all of it (a split too long to read whole in a run's validation)."""

    def __init__(self, ids: np.ndarray, bs: int, bptt: int, warmup: int = WARMUP_TOKENS,
                 length: int | None = None):
        super().__init__(ids, bs, bptt)
        width = max(0, min(warmup, self.stream_len))
        before = self.inputs[:-1, self.stream_len - width :]  # (bs - 1, W): what precedes streams 1..
        self.warmup_inputs = np.concatenate([self.inputs[:1, :width], before])  # (bs, W); row 0 unused
        self.warm = (np.arange(self.bs) > 0) & (width > 0)  # (bs,): the streams that warm up
        if length is not None and length < self.stream_len:  # (bs, length): each stream's beginning
            self.inputs, self.targets, self.stream_len = self.inputs[:, :length], self.targets[:, :length], length

    def shard(self, rank: int, world_size: int) -> "EvalStreams":
        part = super().shard(rank, world_size)
        start = self.bs * rank // world_size
        part.warmup_inputs = self.warmup_inputs[start : start + part.bs]
        part.warm = self.warm[start : start + part.bs]
        return part

    @property
    def warmup_tokens(self) -> int:
        """Tokens read, uncounted, before the streams start."""
        return int(self.warm.sum()) * self.warmup_inputs.shape[1]


def stream_batches_for_eval(ids: np.ndarray, bs: int, bptt: int, warmup: int = WARMUP_TOKENS,
                            min_stream: int = MIN_STREAM_TOKENS, tokens: int | None = None) -> EvalStreams:
    """Stateful evaluation over a whole split as at most ``bs`` streams, each at least
    ``min_stream`` tokens long (and ``bptt``; one stream for a shorter split), warmed up, read in
    pieces of ``bptt`` tokens or more (``PIECE_TOKENS`` in all). ``tokens``: read about this many
    of a longer split, each stream the beginning of its part of it (a sample spread over it)."""
    sample = tokens is not None and tokens < len(ids)
    scored = tokens if sample else len(ids)
    streams = max(1, min(bs, (scored - 1) // max(min_stream, bptt, 1)))
    return EvalStreams(ids, streams, max(bptt, PIECE_TOKENS // streams, 1), warmup,
                       max(1, scored // streams) if sample else None)


def warm_state(model: torch.nn.Module, batches: EvalStreams, device: torch.device) -> State | None:
    """The state the streams start from (None: all zeros); the model reads without predicting."""
    if not batches.warm.any():
        return None
    state = None
    inputs = torch.from_numpy(batches.warmup_inputs.astype(np.int64))  # (N, W)
    for piece in inputs.split(WARMUP_PIECE, dim=1):
        _, state = model.features(piece.to(device), state)
    cold = torch.from_numpy(~batches.warm).to(device)[None, :, None]  # (1, N, 1) against (layers, N, H)
    if isinstance(state, tuple):
        return tuple(s.masked_fill(cold, 0.0) for s in state)
    return state.masked_fill(cold, 0.0)


@torch.inference_mode()
def evaluate_stream(model: torch.nn.Module, batches: StreamBatches, device: torch.device,
                    dist: Distributed | None = None, text: TextSize | None = None) -> Scores:
    """Run statefully over every batch, carrying the hidden state from one to the next. Under
    torchrun (``dist``) each rank runs its own block of the streams and the sums are added up.
    ``text``: the size of the whole split, for bits per character. ``EvalStreams`` warm up first."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, right guesses, tokens
    state = warm_state(model, batches, device) if isinstance(batches, EvalStreams) else None
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
