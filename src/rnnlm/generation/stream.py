"""A stream: one piece of text being written, with its own state, sampling settings, random
source, stop rules, token budget and, once it ends, the reason why (``length``, ``stop`` or
``end``). ``rnnlm.generation.session`` makes streams and steps them.

Stop strings follow OpenAI's completions API: a stream ends when its text contains one of
them, and the stop string itself is not part of the text. While the end of the text could still
become a stop string, that end is held back and released only once it cannot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import torch

from rnnlm.data.tokenizers import StreamDecoder
from rnnlm.errors import invalid
from rnnlm.generation.sampling import Sampling
from rnnlm.models.recurrent import State

MAX_STOPS = 16  # stop strings per stream
MAX_STOP_CHARS = 1000  # characters in one stop string
MAX_LOGPROBS = 20  # alternatives reported per token


@dataclass
class TokenRecord:
    """One drawn token: what it is, what it added to the text and how likely the model found it."""

    id: int
    token: str  # the token's own text (a word without the space that joins it)
    text: str  # what it added to the stream's text, before stop strings are cut out
    logprob: float  # natural log of its probability under the model (temperature 1, nothing cut)
    top: list[tuple[str, float]]  # the most likely tokens at that step and their log-probabilities


@dataclass
class Piece:
    """What one step gave one stream."""

    stream: "Stream"
    text: str  # text released at this step: "" while the end of the text may be a stop string
    token: TokenRecord | None  # None when the stream had ended before this step
    finish_reason: str | None  # set on the step that ended the stream


@dataclass
class Stream:
    """One text being written; made by ``GenerationSession.start``."""

    sampling: Sampling
    seed: int
    max_tokens: int
    stop: tuple[str, ...] = ()
    max_chars: int | None = None
    logprobs: int | None = None  # None: none; K: each token's log-probability and the K best
    prompt_tokens: int = 0
    text: str = ""  # text released so far
    tokens: int = 0  # tokens drawn so far
    finish_reason: str | None = None
    records: list[TokenRecord] = field(default_factory=list)  # kept when logprobs is asked for
    logits: torch.Tensor | None = field(default=None, repr=False)  # (V,) scores of the next token
    state: State | None = field(default=None, repr=False)  # (layers, 1, H), a pair for an LSTM
    decoder: StreamDecoder | None = field(default=None, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)
    held: str = field(default="", repr=False)  # text that may yet turn out to begin a stop string

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def cancel(self) -> None:
        """Stop at once (a client went away): the stream leaves at the next step."""
        if not self.finished:
            self.finish_reason = "length"
            self.drop_state()

    def drop_state(self) -> None:
        self.logits = self.state = None

    def release(self, text: str) -> str:
        """Pass ``text`` through the stop rules; return the part that may be shown now."""
        if not self.stop and self.max_chars is None:
            self.text += text
            return text
        pending = self.held + text
        cut = min((i for i in (pending.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            out, self.held, reason = pending[:cut], "", "stop"
        else:
            hold = stop_prefix_length(pending, self.stop)
            out, self.held, reason = pending[: len(pending) - hold], pending[len(pending) - hold:], None
        if self.max_chars is not None and len(self.text) + len(out) + len(self.held) >= self.max_chars:
            room = self.max_chars - len(self.text)
            if reason is None or len(out) > room:
                out, self.held, reason = (out + self.held)[:room], "", "length"
        self.text += out
        if reason:
            self.end(reason)
        return out

    def end(self, reason: str) -> str:
        """End the stream; release what was held back unless a stop string ended it."""
        tail = ""
        if reason != "stop" and self.held:
            tail, self.held = self.held, ""
            self.text += tail
        self.finish_reason = reason
        self.drop_state()
        return tail


def check_stops(stops: Sequence[str]) -> None:
    """Stop strings a stream can take: a few, none empty, none too long."""
    if len(stops) > MAX_STOPS:
        raise invalid("stop", f"may be given at most {MAX_STOPS} times (got {len(stops)})")
    for s in stops:
        if not s:
            raise invalid("stop", "must not be empty: an empty stop string would end every sample at once")
        if len(s) > MAX_STOP_CHARS:
            raise invalid("stop", f"strings must be at most {MAX_STOP_CHARS} characters (got {len(s)})")


def stop_prefix_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is the start of one of ``stops`` (0: none).
    Only the places in the last ``len(stop) - 1`` characters where a stop's first character
    occurs are tried, longest first: a token costs a few comparisons, not one per character of
    the longest stop string."""
    best = 0
    for stop in stops:
        at = text.find(stop[0], max(len(text) - len(stop) + 1, 0))
        while at != -1 and len(text) - at > best:
            if stop.startswith(text[at:]):
                best = len(text) - at
                break
            at = text.find(stop[0], at + 1)
    return best
