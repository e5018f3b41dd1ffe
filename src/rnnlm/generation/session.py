"""A generation session: one loaded model and the independent streams of text it writes.

    session = GenerationSession.load("runs/demo")
    for piece in session.complete("eight thousand", max_tokens=40, stop=[" nine"], seed=1):
        print(piece.text, end="")

Every way rnnlm writes text goes through here: ``rnnlm generate``, the sample at the end of
``rnnlm train`` and the server's workers. ``start`` reads a prompt once and gives each of its
streams (``rnnlm.generation.stream``) a copy of the state there; ``step`` advances any set of
streams by one token each in a single forward call, so streams can join and leave between steps
(continuous batching).
"""

from __future__ import annotations

import os
import random
from typing import Iterator, Sequence

import numpy as np
import torch

from rnnlm.data.items import ItemRecord, load_items
from rnnlm.errors import RnnlmError, SettingError, invalid
from rnnlm.evaluation.documents import boundary_state
from rnnlm.generation.batched_step import BatchedStep
from rnnlm.generation.native_slot_step import NativeSlotStep, read_streams
from rnnlm.generation.prompt import WHOLE_PIECE, PromptReading, encode_prompt, read_prompts
from rnnlm.generation.sampling import MAX_SAMPLING_SEED, Sampling, draw, draw_one
from rnnlm.generation.single_stream_step import SingleStreamStep
from rnnlm.generation.slot_step import SlotStep, slot_step
from rnnlm.generation.stream import MAX_LOGPROBS, Piece, Stream, TokenRecord, check_stops
from rnnlm.models.recurrent import State, cat_states, split_state
from rnnlm.runfolder import Run, load_run


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
        self.stepper: BatchedStep | None = None
        self.single: SingleStreamStep | None = None
        self.boundary: State | None = None  # where a list's documents start (document_start)
        self.items: ItemRecord | None = None  # a list's training and validation items (verdict), once read

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "auto") -> "GenerationSession":
        return cls(load_run(folder, device=device))

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.piece(self.vocab.itos[token_id])

    def encode_prompt(self, prompt: str) -> tuple[np.ndarray, int]:
        """The prompt's token ids and how many of them are ``xxunk`` (not in the vocab)."""
        return encode_prompt(prompt, self.tokenizer, self.vocab)

    def begin_prompt(self, prompt: str | Sequence[int]) -> PromptReading:
        """A prompt, text or token ids, to be read by ``read_prompts``. Token ids are the text's
        own: at word level the reading starts at ``xxbos`` before them, as a text's does. A run on
        a list's documents reads it as the start of a document, from ``document_start``."""
        if isinstance(prompt, str):
            ids, unknown = self.encode_prompt(prompt)
            reading = PromptReading(ids, prompt, unknown)
        elif len(prompt) == 0:
            raise RnnlmError("the prompt must hold at least one token")
        else:
            ids = np.asarray(prompt, dtype=np.int64)
            text = self.tokenizer.decode(ids.tolist(), self.vocab)
            if self.tokenizer.adds_bos:
                ids = np.concatenate([[self.vocab.bos_id], ids]).astype(np.int64)
            reading = PromptReading(ids, text)
        if self.tokenizer.documents:
            reading.state = self.document_start()
        return reading

    def verdict(self, text: str) -> str | None:
        """A run on a list: whether ``text`` is a whole item of its training list, of its
        validation list, or new (``rnnlm.data.items``); None for other runs."""
        if not self.tokenizer.documents:
            return None
        if self.items is None:
            self.items = load_items(self.run.folder)
        return None if self.items is None else self.items.verdict(self.tokenizer, text)

    def document_start(self) -> State:
        """The state a document of a list starts from (``rnnlm.evaluation.documents.boundary_state``),
        found once."""
        if self.boundary is None:
            self.boundary = boundary_state(self.model, self.vocab)
        return self.boundary

    def read_prompts(self, readings: Sequence[PromptReading], tokens: int) -> int:
        """Feed the next piece, up to ``tokens`` tokens, of each prompt (``prompt.read_prompts``)."""
        return read_prompts(self.model, readings, tokens, self.single_step().native)

    def read(self, prompt: str | Sequence[int]) -> PromptReading:
        """A prompt read to its end."""
        reading = self.begin_prompt(prompt)
        while not reading.done:
            self.read_prompts([reading], WHOLE_PIECE)
        return reading

    @torch.inference_mode()
    def start(
        self,
        prompt: str | Sequence[int] | PromptReading = "",
        *,
        n: int = 1,
        max_tokens: int = 200,
        stop: Sequence[str] = (),
        sampling: Sampling = Sampling(),
        seed: int | None = None,
        logprobs: int | None = None,
        max_chars: int | None = None,
    ) -> list[Stream]:
        """``n`` streams that continue ``prompt``: text, token ids, or a reading of one that is
        done. The prompt is read once; each stream gets a copy of the state after it. Stream i
        draws with seed ``seed + i`` (a fresh random seed when ``seed`` is None), so each sample
        can be had again alone."""
        check_stream_options(n, max_tokens, stop, seed, logprobs, max_chars)
        sampling.validate()
        reading = prompt if isinstance(prompt, PromptReading) else self.read(prompt)
        if not reading.done:
            raise ValueError("the prompt has not been read to its end")
        ids, last, state = reading.ids, reading.logits, reading.state
        base = random.SystemRandom().getrandbits(63) if seed is None else seed
        streams = []
        for i in range(n):
            seed_i = (base + i) % (MAX_SAMPLING_SEED + 1)
            stream = Stream(sampling, seed_i, max_tokens, tuple(stop), max_chars, logprobs, prompt_tokens=len(ids),
                            logits=last, state=state,
                            decoder=self.tokenizer.stream_decoder(self.vocab))
            stream.rng.seed(stream.seed)
            for token in ids:
                stream.decoder.feed(int(token))
            if max_tokens == 0:
                stream.end("length")
            streams.append(stream)
        return streams

    def step(self, streams: Sequence[Stream]) -> list[Piece]:
        """Advance every unfinished stream of ``streams`` by one token: draw each one's next token
        from its own distribution, apply its stop rules, then run the ones still going through
        the model together, one forward call. One ``Piece`` per stream, in order."""
        active = [s for s in streams if not s.finished]
        if len(active) == 1 and len(streams) == 1:
            return [self.step_one(active[0])]
        return self.step_together(streams, active)

    @torch.inference_mode()
    def step_together(self, streams: Sequence[Stream], active: list[Stream]) -> list[Piece]:
        """``step`` for streams of which ``active`` are unfinished, through the batched step."""
        drawn: dict[int, Piece] = {}
        if active:
            ids, pieces = self.draw_and_advance(active, torch.stack([s.logits for s in active]))  # (N, V)
            drawn = {id(piece.stream): piece for piece in pieces}
            going = [(s, i) for s, i in zip(active, ids.tolist()) if not s.finished]
            self.forward([s for s, _ in going], [i for _, i in going])
        return [drawn.get(id(s)) or Piece(s, "", None, None) for s in streams]

    def draw_and_advance(self, streams: Sequence[Stream],
                         logits: torch.Tensor) -> tuple[torch.Tensor, list[Piece]]:
        """Every row of ``logits`` (N, V) drawn (``draw_rows``), row i by ``streams[i]``'s own
        uniform number; then each stream's text and stop rules. The ids (N,) and a piece per stream."""
        ids = self.draw_rows(logits, streams)
        records = self.token_records(logits, streams, ids)
        pieces = [self.advance(s, token_id, record) for s, token_id, record in zip(streams, ids, records)]
        return torch.tensor(ids), pieces

    def draw_rows(self, logits: torch.Tensor, streams: Sequence[Stream]) -> list[int]:
        """Row i of ``logits`` (N, V) drawn by ``streams[i]``: where the step is in C, the rows
        that draw by temperature alone are drawn by the C draw, as a stream alone and the slots'
        kernel draw them (the same token from the same scores, bit for bit); the others, and
        every row without the kernel, by ``draw``, in one call."""
        uniforms = [s.rng.random() for s in streams]
        native = self.single_step().native
        if native is None:
            return draw(logits, [s.sampling for s in streams], uniforms, self.banned).tolist()
        ids, others = [0] * len(streams), []
        for i, stream in enumerate(streams):
            if stream.sampling.by_temperature:
                ids[i] = native.draw(logits[i], self.ban_bias, stream.sampling.temperature, uniforms[i])
            else:
                others.append(i)
        if others:
            drawn = draw(logits[others], [streams[i].sampling for i in others], [uniforms[i] for i in others],
                         self.banned)
            for i, token_id in zip(others, drawn.tolist()):
                ids[i] = token_id
        return ids

    def slot_kernel(self, state: list[torch.Tensor], logits: torch.Tensor) -> SlotStep | NativeSlotStep:
        """The draw and step of a block of slots as one call, on the slots' buffers ``state``
        and ``logits``: by the C kernel where the lone stream's step is in C (the same numbers
        as a stream alone, ``rnnlm.generation.native_slot_step``), else by TorchScript
        (``rnnlm.generation.slot_step``)."""
        native = self.single_step().native
        if native is not None:
            return NativeSlotStep(native, self.ban_bias, state, logits)
        if self.stepper is None:
            self.stepper = BatchedStep(self.model)
        return slot_step(self.stepper, self.banned, state, logits)

    def step_slots(self, streams: Sequence[Stream], logits: torch.Tensor, state: State,
                   kernel: SlotStep | NativeSlotStep | None = None, steps: int = 1) -> list[Piece]:
        """``step`` for streams whose scores and state are the first rows of a block of slots
        (``rnnlm.generation.slots``): scores (R, V) and state (layers, R, H), R >= N. The model
        runs in place, through torch on the whole block (ended streams and free slots too: their
        rows are overwritten when a stream next takes them), through the C kernel on the N
        streams' rows. With the slots' ``kernel``, streams that all draw by temperature alone and
        record no log-probabilities are drawn and stepped in one call (the model then runs even
        on a step that ends them all); by the C kernel, ``steps`` steps in that call, each
        stream's pieces in order and none after the one that ends it (the steps after it are
        thrown away). Otherwise one step: a piece per stream."""
        n = len(streams)
        if kernel is not None and all(s.logprobs is None and s.sampling.by_temperature for s in streams):
            temperatures = [s.sampling.temperature for s in streams]
            if steps > 1 and hasattr(kernel, "run_steps"):  # the C kernel
                drawn = kernel.run_steps(n, temperatures, [[s.rng.random() for s in streams] for _ in range(steps)])
            else:
                drawn = [kernel(n, logits.shape[0], temperatures, [s.rng.random() for s in streams])]
            return [self.advance(s, token_id, None) for ids in drawn for s, token_id in zip(streams, ids)
                    if not s.finished]
        ids, pieces = self.draw_and_advance(streams, logits[:n])
        if all(s.finished for s in streams):
            return pieces
        if isinstance(kernel, NativeSlotStep):
            kernel.step(ids.tolist())
        else:
            if self.stepper is None:
                self.stepper = BatchedStep(self.model)
            self.stepper.step_into(ids, state, out=logits)  # token 0 in the free slots
        return pieces

    def step_one(self, stream: Stream) -> Piece:
        """``step`` for a single stream: the same token and text, with less work around the model.
        The C step and draw make nothing autograd could record, so they run outside inference
        mode (its switch costs about as much as the draw); the torch step runs inside it."""
        if self.single_step().native is None:
            with torch.inference_mode():
                return self.draw_and_step_one(stream)
        return self.draw_and_step_one(stream)

    def draw_and_step_one(self, stream: Stream) -> Piece:
        """``step_one``'s work, in the mode its caller chose."""
        logits, sampling, native = stream.logits, stream.sampling, self.single.native  # (V,)
        if native is not None and sampling.by_temperature:
            token_id = native.draw(logits, self.ban_bias, sampling.temperature, stream.rng.random())
        else:
            token_id = draw_one(torch.add(logits, self.ban_bias), sampling, stream.rng.random())  # add: less than a fill
        record = self.token_records(logits[None], [stream], [token_id])[0] if stream.logprobs is not None else None
        piece = self.advance(stream, token_id, record)
        if not stream.finished:
            stream.logits, stream.state = self.single.step(token_id, stream.state)
        return piece

    def single_step(self) -> SingleStreamStep:
        if self.single is None:
            self.single = SingleStreamStep(self.model)
        return self.single

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
        """One step of the model for ``streams``, their drawn ``ids`` as input, as one batch: by
        the C kernel where the step is in C (each stream's numbers those of its step alone), else
        by ``BatchedStep`` (built at the first step: the weights are read then)."""
        if not streams:
            return
        native = self.single_step().native
        if native is not None:
            logits, states = read_streams(native, [s.state for s in streams], [[i] for i in ids])
            for stream, row, row_state in zip(streams, logits, states):
                stream.logits, stream.state = row, row_state
            return
        if self.stepper is None:
            self.stepper = BatchedStep(self.model)
        x = torch.tensor(ids, device=self.device)  # (N,)
        logits, state = self.stepper.step(x, cat_states([s.state for s in streams]))  # (N, V)
        for stream, row, row_state in zip(streams, logits, split_state(state)):
            stream.logits, stream.state = row, row_state

    def run_streams(self, streams: Sequence[Stream]) -> Iterator[list[Piece]]:
        """Step ``streams`` together until every one has ended."""
        if len(streams) == 1 and self.runs_alone(streams[0]):
            yield from self.run_alone(streams[0])
            return
        while not all(s.finished for s in streams):
            yield self.step(streams)

    def runs_alone(self, stream: Stream) -> bool:
        """Whether ``run_alone`` can write ``stream``: the C kernel is here, and the stream draws
        by temperature alone and records nothing."""
        return self.single_step().native is not None and stream.logprobs is None and stream.sampling.by_temperature

    def run_alone(self, stream: Stream) -> Iterator[list[Piece]]:
        """``run_streams`` for one stream, RUN_TOKENS tokens to a call of the C kernel (drawn and
        stepped there), then each token's text and stop rules in turn: the tokens of
        ``step_one``, one uniform number each from the stream's own generator. Tokens drawn
        after the one that ends the stream are dropped."""
        while not stream.finished:
            yield from ([piece] for piece in self.run_tokens(stream, RUN_TOKENS))

    def run_tokens(self, stream: Stream, count: int) -> Iterator[Piece]:
        """Up to ``count`` tokens of an unfinished ``stream`` that ``runs_alone``, in one call of
        the C kernel, then a piece each: ``run_alone``'s run."""
        count = min(count, stream.max_tokens - stream.tokens)
        uniforms = [stream.rng.random() for _ in range(count)]
        last = stream.tokens + count == stream.max_tokens  # the run's last token ends the stream
        tokens, logits, state = self.single.native.run_tokens(stream.logits, self.ban_bias, stream.sampling.temperature,
                                                              uniforms, stream.state, step_last=not last)
        for token_id in tokens:
            yield self.advance(stream, token_id, None)
            if stream.finished:
                break
        stream.logits, stream.state = logits, state

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
RUN_TOKENS = 16  # tokens a call of the C kernel writes for a stream alone: pieces come in bursts this long
MAX_TOKENS = 100_000
MAX_TOTAL_TOKENS = 10_000_000  # samples times tokens: every stream's text is kept until it ends


def check_stream_options(n: int, max_tokens: int, stop: Sequence[str], seed: int | None, logprobs: int | None,
                         max_chars: int | None) -> None:
    """The settings of ``GenerationSession.start``, each named by its parameter."""
    if not 1 <= n <= MAX_SAMPLES:
        raise invalid("n", f"must be in 1..{MAX_SAMPLES} (got {n})")
    if not 0 <= max_tokens <= MAX_TOKENS:
        raise invalid("max_tokens", f"must be in 0..{MAX_TOKENS} (got {max_tokens})")
    if n * max_tokens > MAX_TOTAL_TOKENS:
        raise SettingError("max_tokens", f"{{max_tokens}} x {{n}} must be at most {MAX_TOTAL_TOKENS:,} tokens "
                                         f"(got {n * max_tokens:,})")
    check_stops(stop)
    if seed is not None and not 0 <= seed <= MAX_SAMPLING_SEED:
        raise invalid("seed", f"must be in 0..{MAX_SAMPLING_SEED} (got {seed})")
    if logprobs is not None and not 0 <= logprobs <= MAX_LOGPROBS:
        raise invalid("logprobs", f"must be in 0..{MAX_LOGPROBS} (got {logprobs})")
    if max_chars is not None and max_chars < 1:
        raise invalid("max_chars", f"must be >= 1 (got {max_chars})")
