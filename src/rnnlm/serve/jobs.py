"""What the batcher takes and what it says back: a completion job, and the ways a job can be
refused or end without its text. Nothing here knows about HTTP; ``rnnlm.serve.errors`` gives
each outcome its status code.

A job's events, delivered on the event loop in the order they happen:

    ("tokens", [(choice, text, record, finish_reason), ...])   after each step (streamed jobs only)
    ("done", None)                                             every stream has ended
    ("error", Failure)                                         the job ended without its text
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rnnlm.generation.prompt import PromptReading
from rnnlm.generation.sampling import Sampling
from rnnlm.generation.stream import Stream


class Busy(Exception):
    """No room for a request: every slot is taken and the queue is full, or the server is stopping.
    ``retry_after``: seconds after which trying again is worth it."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Failure(Exception):
    """Why a job ended without its text (the payload of its ``("error", ...)`` event)."""

    @property
    def message(self) -> str:
        return str(self)


class ShuttingDown(Failure):
    """The server stopped before the job started: the same request may be sent again later."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class Fault(Failure):
    """The model's work on the job raised (a bug): that job ends, the model goes on serving."""

    @classmethod
    def of(cls, error: Exception) -> Fault:
        return cls(f"internal error: {type(error).__name__}: {error}")


@dataclass(eq=False)
class CompletionJob:
    """One request's prompts and the streams that continue them (``n`` per prompt).

    ``deliver`` is called on the event loop with each of the job's events (see the module's
    docstring); after ``("done", None)`` its streams are the request's to read."""

    prompts: list  # each a str, or a list of token ids
    n: int
    max_tokens: int
    stop: tuple[str, ...]
    sampling: Sampling
    seed: int | None
    logprobs: int | None
    stream: bool
    deliver: Callable[[tuple], None]
    cancelled: bool = False  # set by the event loop: the client went away
    submitted: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    prompt_texts: list[str] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    unknown_tokens: int = 0
    readings: list[PromptReading] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)  # choice i = prompt i // n, sample i % n

    @property
    def size(self) -> int:
        """Slots (streams) the job takes."""
        return len(self.prompts) * self.n

    def cancel(self) -> None:
        self.cancelled = True
