"""A generation session: one loaded model and the independent streams of text it writes.

    session = GenerationSession.load("runs/demo")
    for piece in session.complete("eight thousand", max_tokens=40, stop=[" nine"], seed=1):
        print(piece.text, end="")

Every way rnnlm writes text goes through here: ``rnnlm generate``, the sample at the end of
``rnnlm train`` and the server's workers. A stream (``Stream``) is one piece of text being
written: its own recurrent state (a row of the batch when it is stepped with others), sampling
settings, random source, stop rules, token budget and, once it ends, the reason why (``length``,
``stop`` or ``end``). ``start`` reads a prompt once and gives each of its streams a copy of the
state there; ``step`` advances any set of streams by one token each in a single forward call, so
streams can join and leave between steps (continuous batching).

Stop strings follow OpenAI's completions API: a stream ends when its text contains one of
them, and the stop string itself is not part of the text. While the end of the text could still
become a stop string, that end is held back and released only once it cannot.
"""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from rnnlm.data.tokenizers import StreamDecoder
from rnnlm.errors import RnnlmError
from rnnlm.generate import encode_prime, feed_prime, one_step_kernels
from rnnlm.models.onestep import OneStep
from rnnlm.models.recurrent import State, cat_states, split_state
from rnnlm.models.singlestep import SingleStep
from rnnlm.runfolder import Run, load_run
from rnnlm.sampling import MAX_SEED, Sampling, draw, draw_one

MAX_STOPS = 16  # stop strings per stream
MAX_STOP_CHARS = 1000  # characters in one stop string
MAX_LOGPROBS = 20  # alternatives reported per token
SHORT_PIECE = 32  # prompt pieces up to this many tokens are read on torch's own kernels (read_prompts)


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


@dataclass
class PromptReading:
    """A prompt read into the model a piece at a time (``GenerationSession.read_prompt``), so that
    a server can feed a long prompt between the steps of the streams already running; ``start``
    continues from it once it is ``done``."""

    ids: np.ndarray
    read: int = 0  # tokens of ``ids`` fed so far
    logits: torch.Tensor | None = field(default=None, repr=False)  # (V,) scores after the last token read
    state: State | None = field(default=None, repr=False)  # (layers, 1, H), a pair for an LSTM

    @property
    def done(self) -> bool:
        return self.read >= len(self.ids)


def stop_prefix_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is the start of one of ``stops`` (0: none)."""
    longest = min(len(text), max((len(s) for s in stops), default=1) - 1)
    for n in range(longest, 0, -1):
        end = text[-n:]
        if any(s.startswith(end) for s in stops):
            return n
    return 0


class GenerationSession:
    """A run folder loaded once (model, tokenizer, vocab, device) and the streams it drives."""

    def __init__(self, run: Run):
        self.run = run
        self.model, self.tokenizer, self.vocab, self.device = run.model, run.tokenizer, run.vocab, run.device
        self.model.eval()
        banned = [self.vocab.unk_id, self.vocab.pad_id] + ([] if self.tokenizer.adds_bos else [self.vocab.bos_id])
        self.banned = torch.zeros(len(self.vocab), dtype=torch.bool, device=self.device)
        self.banned[banned] = True
        self.ban_bias = torch.zeros(len(self.vocab), device=self.device).masked_fill_(self.banned, float("-inf"))  # (V,)
        self.end_id = self.vocab.bos_id if self.tokenizer.adds_bos else None  # drawing it ends a document
        self.stepper: OneStep | None = None
        self.single: SingleStep | None = None

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "auto") -> "GenerationSession":
        return cls(load_run(folder, device=device))

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.piece(self.vocab.itos[token_id])

    def encode_prompt(self, prompt: str) -> tuple[np.ndarray, int]:
        """The prompt's token ids and how many of them are ``xxunk`` (not in the vocab)."""
        return encode_prime(prompt, self.tokenizer, self.vocab)

    def begin_prompt(self, ids: np.ndarray) -> PromptReading:
        """A prompt (token ids, at least one) to be read by ``read_prompt``."""
        if len(ids) == 0:
            raise RnnlmError("the prime must hold at least one token")
        return PromptReading(np.asarray(ids, dtype=np.int64))

    def read_prompt(self, reading: PromptReading, tokens: int) -> int:
        """Feed the next ``tokens`` tokens (at least one) of a prompt; return how many were fed."""
        return self.read_prompts([reading], tokens)

    @torch.inference_mode()
    def read_prompts(self, readings: Sequence[PromptReading], tokens: int) -> int:
        """Feed the next piece, up to ``tokens`` tokens (at least one), of each prompt; pieces of
        the same length go through the model together, one call (a burst of short prompts costs
        one call, not one each). Short pieces run on torch's own recurrent kernels: oneDNN's
        reorder of the weights on every call costs more than a few steps. Returns the tokens fed."""
        groups: dict[int, list[PromptReading]] = {}
        for reading in readings:
            size = min(max(1, tokens), len(reading.ids) - reading.read)
            if size > 0:
                groups.setdefault(size, []).append(reading)
        fed = 0
        for size, group in groups.items():
            x = torch.as_tensor(np.stack([r.ids[r.read : r.read + size] for r in group]), device=self.device)  # (G, T)
            states = [r.state for r in group]
            if all(state is None for state in states):
                state = None
            else:
                zero = self.model.init_state(1, self.device)
                state = cat_states([zero if state is None else state for state in states])
            with one_step_kernels() if size <= SHORT_PIECE else nullcontext():
                logits, state = self.model(x, state)
            for reading, row, row_state in zip(group, logits[:, -1], split_state(state)):
                reading.logits, reading.state = row, row_state
                reading.read += size
            fed += size * len(group)
        return fed

    @torch.inference_mode()
    def start(
        self,
        prompt: str = "",
        *,
        n: int = 1,
        max_tokens: int = 200,
        stop: Sequence[str] = (),
        sampling: Sampling = Sampling(),
        seed: int | None = None,
        logprobs: int | None = None,
        max_chars: int | None = None,
        prompt_ids: np.ndarray | None = None,
        reading: PromptReading | None = None,
    ) -> list[Stream]:
        """``n`` streams that continue ``prompt`` (already encoded: ``prompt_ids``; already read:
        ``reading``, which must be done). The prompt is read once; each stream gets a copy of the
        state after it. Stream i draws with seed ``seed + i`` (a fresh random seed when ``seed``
        is None), so each sample can be had again alone."""
        check_stream_options(n, max_tokens, stop, seed, logprobs, max_chars)
        sampling.validate()
        if reading is not None:
            if not reading.done:
                raise ValueError("the prompt has not been read to its end")
            ids, last, state = reading.ids, reading.logits, reading.state
        else:
            ids = self.encode_prompt(prompt)[0] if prompt_ids is None else prompt_ids
            logits, state = feed_prime(self.model, ids, 1)
            last = logits[0, -1]
        base = random.SystemRandom().getrandbits(63) if seed is None else seed
        streams = []
        for i in range(n):
            stream = Stream(sampling, (base + i) % (MAX_SEED + 1), max_tokens, tuple(stop), max_chars, logprobs,
                            prompt_tokens=len(ids), logits=last, state=state,
                            decoder=self.tokenizer.stream_decoder(self.vocab))
            stream.rng.seed(stream.seed)
            for token in ids:
                stream.decoder.feed(int(token))
            if max_tokens == 0:
                stream.end("length")
            streams.append(stream)
        return streams

    @torch.inference_mode()
    def step(self, streams: Sequence[Stream]) -> list[Piece]:
        """Advance every unfinished stream of ``streams`` by one token: draw each one's next token
        from its own distribution, apply its stop rules, then run the ones still going through
        the model together, one forward call. One ``Piece`` per stream, in order."""
        active = [s for s in streams if not s.finished]
        if len(active) == 1 and len(streams) == 1:
            return [self.step_one(active[0])]
        drawn: dict[int, Piece] = {}
        if active:
            logits = torch.stack([s.logits for s in active])  # (N, V)
            ids = draw(logits.masked_fill(self.banned, float("-inf")), [s.sampling for s in active],
                       [s.rng.random() for s in active]).tolist()
            records = self.token_records(logits, active, ids)
            for stream, token_id, record in zip(active, ids, records):
                drawn[id(stream)] = self.advance(stream, token_id, record)
            self.forward([s for s in active if not s.finished], [i for s, i in zip(active, ids) if not s.finished])
        return [drawn.get(id(s)) or Piece(s, "", None, None) for s in streams]

    def step_one(self, stream: Stream) -> Piece:
        """``step`` for a single stream: the same token and text, with less work around the model."""
        logits = stream.logits  # (V,)
        token_id = draw_one(torch.add(logits, self.ban_bias), stream.sampling, stream.rng.random())  # masked_fill, less work
        record = self.token_records(logits[None], [stream], [token_id])[0] if stream.logprobs is not None else None
        piece = self.advance(stream, token_id, record)
        if not stream.finished:
            if self.single is None:
                self.single = SingleStep(self.model)
            stream.logits, stream.state = self.single.step(token_id, stream.state)
        return piece

    def advance(self, stream: Stream, token_id: int, record: TokenRecord | None) -> Piece:
        """Account for one drawn token: its text through the stop rules, the budgets, the end."""
        stream.tokens += 1
        if record is not None:
            stream.records.append(record)
        if token_id == self.end_id:
            return Piece(stream, stream.end("end"), record, "end")
        written = stream.decoder.feed(token_id)
        if record is not None:
            record.text = written
        text = stream.release(written)
        if not stream.finished and stream.tokens >= stream.max_tokens:
            text += stream.release(stream.decoder.flush())
            if not stream.finished:
                text += stream.end("length")
        return Piece(stream, text, record, stream.finish_reason)

    def token_records(self, logits: torch.Tensor, streams: Sequence[Stream], ids: list[int]) -> list:
        """Log-probabilities of the drawn tokens and the best alternatives, for the streams that
        asked for them (None for the others)."""
        asked = [i for i, s in enumerate(streams) if s.logprobs is not None]
        records: list[TokenRecord | None] = [None] * len(streams)
        if not asked:
            return records
        logp = logits[asked].float().log_softmax(-1)  # (A, V): the model's own distribution
        k = max(streams[i].logprobs for i in asked)
        best_lp, best_ids = logp.topk(min(k, logp.shape[-1]), dim=-1) if k else (None, None)
        chosen = logp.gather(-1, torch.tensor([[ids[i]] for i in asked], device=logp.device)).squeeze(-1).tolist()
        for row, i in enumerate(asked):
            want = streams[i].logprobs
            top = [] if not want else [(self.token_text(t), lp) for t, lp in
                                       zip(best_ids[row, :want].tolist(), best_lp[row, :want].tolist())]
            records[i] = TokenRecord(ids[i], self.token_text(ids[i]), "", chosen[row], top)
        return records

    def forward(self, streams: list[Stream], ids: list[int]) -> None:
        """One step of the model for ``streams``, their drawn ``ids`` as input, as one batch (by
        ``OneStep``, built at the first step: the weights are read then)."""
        if not streams:
            return
        if self.stepper is None:
            self.stepper = OneStep(self.model)
        x = torch.tensor(ids, device=self.device)  # (N,)
        logits, state = self.stepper.step(x, cat_states([s.state for s in streams]))  # (N, V)
        for stream, row, row_state in zip(streams, logits, split_state(state)):
            stream.logits, stream.state = row, row_state

    def run_streams(self, streams: Sequence[Stream]) -> Iterator[list[Piece]]:
        """Step ``streams`` together until every one has ended."""
        while not all(s.finished for s in streams):
            yield self.step(streams)

    def sample_texts(self, prompt: str = "", max_tokens: int = 200, samples: int = 1, **options) -> list[str]:
        """Whole samples, each the prompt followed by what was written after it."""
        streams = self.start(prompt, n=samples, max_tokens=max_tokens, **options)
        for _ in self.run_streams(streams):
            pass
        return [prompt + s.text for s in streams]

    def complete(
        self,
        prompt: str = "",
        max_tokens: int = 200,
        stop: Sequence[str] = (),
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        *,
        greedy: bool = False,
        max_chars: int | None = None,
    ) -> Iterator[Piece]:
        """One stream continuing ``prompt``, piece by piece as it is written; the last piece
        carries the finish reason (and ``piece.stream`` the whole text)."""
        (stream,) = self.start(prompt, max_tokens=max_tokens, stop=stop, seed=seed, logprobs=logprobs,
                               max_chars=max_chars, sampling=Sampling(temperature, top_k, top_p, greedy))
        if stream.finished:
            yield Piece(stream, "", None, stream.finish_reason)
        for (piece,) in self.run_streams([stream]):
            yield piece


MAX_SAMPLES = 1000
MAX_TOKENS = 100_000
MAX_TOTAL_TOKENS = 10_000_000  # samples times tokens: every stream's text is kept until it ends


def check_stream_options(n: int, max_tokens: int, stop: Sequence[str], seed: int | None, logprobs: int | None,
                         max_chars: int | None) -> None:
    """The settings of ``GenerationSession.start``, named as the command line names them."""
    if not 1 <= n <= MAX_SAMPLES:
        raise RnnlmError(f"--samples must be in 1..{MAX_SAMPLES} (got {n})")
    if not 0 <= max_tokens <= MAX_TOKENS:
        raise RnnlmError(f"-n must be in 0..{MAX_TOKENS} (got {max_tokens})")
    if n * max_tokens > MAX_TOTAL_TOKENS:
        raise RnnlmError(f"-n x --samples must be at most {MAX_TOTAL_TOKENS:,} tokens (got {n * max_tokens:,})")
    if len(stop) > MAX_STOPS:
        raise RnnlmError(f"--stop may be given at most {MAX_STOPS} times (got {len(stop)})")
    for s in stop:
        if not s:
            raise RnnlmError("--stop must not be empty: an empty stop string would end every sample at once")
        if len(s) > MAX_STOP_CHARS:
            raise RnnlmError(f"--stop strings must be at most {MAX_STOP_CHARS} characters (got {len(s)})")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise RnnlmError(f"--seed must be in 0..{MAX_SEED} (got {seed})")
    if logprobs is not None and not 0 <= logprobs <= MAX_LOGPROBS:
        raise RnnlmError(f"--logprobs must be in 0..{MAX_LOGPROBS} (got {logprobs})")
    if max_chars is not None and max_chars < 1:
        raise RnnlmError(f"--max-chars must be >= 1 (got {max_chars})")
