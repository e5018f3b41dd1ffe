"""The prompt of a stream: its token ids, and the state after reading it once.

Generation is stateful: the prompt is read once, then each new token costs one step of the
recurrent network, O(1) in the length so far, unlike the lessons' sliding window that re-reads
the last n characters from a zero state for every token. A prompt is read a piece at a time
(``read_prompts``): a long one never holds the logits of all its tokens at once, and a server
reads it between the steps of the streams already running.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch

from rnnlm.data.tokenizers import Tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.generation.native_slot_step import read_streams
from rnnlm.generation.native_step import NativeStep
from rnnlm.models.recurrent import RecurrentLM, State, cat_states, split_state

WHOLE_PIECE = 1024  # tokens of a prompt read at a time when it is read to its end at once
SHORT_PIECE = 32  # pieces up to this many tokens are read on torch's own kernels (one_step_kernels)

_kernel_lock = threading.Lock()
_kernel_users = 0
_kernel_setting = True


@contextmanager
def one_step_kernels() -> Iterator[None]:
    """Torch's own recurrent kernels instead of oneDNN's for one step at a time.

    On the CPU, oneDNN's LSTM reorders every weight matrix on each call: cheap next to a
    training batch, but several times the cost of the step itself at one token (measured in
    benchmarks/README.md). The setting is process-wide, so it is counted: several threads (a
    server's workers, one per model) may be inside at once, and the setting comes back when the
    last one leaves.
    """
    global _kernel_users, _kernel_setting
    with _kernel_lock:
        if _kernel_users == 0:
            _kernel_setting = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
        _kernel_users += 1
    try:
        yield
    finally:
        with _kernel_lock:
            _kernel_users -= 1
            if _kernel_users == 0:
                torch.backends.mkldnn.enabled = _kernel_setting


@dataclass
class PromptReading:
    """A prompt being read into the model a piece at a time (``read_prompts``); the streams that
    continue it start from it once it is ``done``."""

    ids: np.ndarray  # (T,) int64, at least one token
    text: str = ""  # the prompt as text (decoded when it came as token ids)
    unknown: int = 0  # tokens of the text that are not in the vocab, read as xxunk
    read: int = 0  # tokens of ``ids`` fed so far
    logits: torch.Tensor | None = field(default=None, repr=False)  # (V,) scores after the last token read
    state: State | None = field(default=None, repr=False)  # (layers, 1, H), a pair for an LSTM

    @property
    def done(self) -> bool:
        return self.read >= len(self.ids)


def encode_prompt(prompt: str, tokenizer: Tokenizer, vocab: Vocab) -> tuple[np.ndarray, int]:
    """Token ids of the prompt (after ``xxbos`` at word level) and how many are ``xxunk`` (not in
    the vocab). An empty prompt at character level starts from a newline (or the most common token)."""
    ids = tokenizer.encode(prompt, vocab).astype(np.int64) if prompt else np.zeros(0, dtype=np.int64)
    unknown = int((ids == vocab.unk_id).sum())
    if tokenizer.adds_bos:
        return np.concatenate([[vocab.bos_id], ids]).astype(np.int64), unknown
    if len(ids) == 0:  # a newline's token (BPE writes it as a byte token), else the most common one
        newline = tokenizer.encode("\n", vocab).astype(np.int64)
        if len(newline) and vocab.unk_id not in newline:
            return newline, unknown
        return np.array([min(len(vocab) - 1, 3)], dtype=np.int64), unknown
    return ids, unknown


@torch.inference_mode()
def read_prompts(model: RecurrentLM, readings: Sequence[PromptReading], tokens: int,
                 native: NativeStep | None = None) -> int:
    """Feed the next piece, up to ``tokens`` tokens (at least one), of each prompt; pieces of the
    same length go through the model together, one call (a burst of short prompts costs one call,
    not one each). With ``native`` (the model's step in C) they go through the C kernel
    (``read_in_c``); else short pieces run on torch's own recurrent kernels: oneDNN's reorder of
    the weights on every call costs more than a few steps. Returns the tokens fed."""
    device = next(model.parameters()).device
    groups: dict[int, list[PromptReading]] = {}
    for reading in readings:
        size = min(max(1, tokens), len(reading.ids) - reading.read)
        if size > 0:
            groups.setdefault(size, []).append(reading)
    fed = 0
    for size, group in groups.items():
        if native is not None:
            read_in_c(native, group, size)
            fed += size * len(group)
            continue
        x = torch.as_tensor(np.stack([r.ids[r.read : r.read + size] for r in group]), device=device)  # (G, T)
        states = [r.state for r in group]
        if all(state is None for state in states):
            state = None
        else:
            zero = model.init_state(1, device)
            state = cat_states([zero if state is None else state for state in states])
        with one_step_kernels() if size <= SHORT_PIECE else nullcontext():
            logits, state = model(x, state)  # (G, T, V)
        for reading, row, row_state in zip(group, logits[:, -1], split_state(state)):
            reading.logits, reading.state = row, row_state
            reading.read += size
        fed += size * len(group)
    return fed


def read_in_c(native: NativeStep, group: Sequence[PromptReading], size: int) -> None:
    """The next ``size`` tokens of every prompt of ``group`` together, by the C kernel of the
    streams in slots (layer by layer: a layer's weights stay in cache for all ``size`` tokens).
    Each prompt's scores and state are those it gets read alone, bit for bit, whatever prompts
    it is read with and in whatever pieces: a server's text for a seed is the text the seed
    gives alone, from the prompt on."""
    logits, states = read_streams(native, [reading.state for reading in group],
                                  [reading.ids[reading.read : reading.read + size].tolist() for reading in group])
    for reading, row, state in zip(group, logits, states):
        reading.logits, reading.state = row, state
        reading.read += size
