"""The prompt of a stream: its token ids, and the state after reading it once.

Generation is stateful: the prime is fed once, then each new token costs one step of the
recurrent network, O(1) in the length so far, unlike the lessons' sliding window that re-reads
the last n characters from a zero state for every token. The streams themselves live in
``rnnlm.session``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch

from rnnlm.data.tokenizers import Tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.errors import RnnlmError
from rnnlm.models import RecurrentLM, State

PRIME_PIECE = 1024  # tokens of the prime run through the model at a time

_kernel_lock = threading.Lock()
_kernel_users = 0
_kernel_setting = True


@contextmanager
def one_step_kernels() -> Iterator[None]:
    """Torch's own recurrent kernels instead of oneDNN's for one step at a time.

    On the CPU, oneDNN's LSTM reorders every weight matrix on each call: cheap next to a
    training batch, but about 10x the cost of the step itself at one token (0.7 ms against
    8.8 ms a step for a 2-layer 512 LSTM; benchmarks/README.md). The setting is process-wide,
    so it is counted: several threads (a server's workers, one per model) may be inside at
    once, and the setting comes back when the last one leaves.
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


def feed_prime(model: RecurrentLM, prime: Sequence[int] | np.ndarray, samples: int) -> tuple[torch.Tensor, State]:
    """Run the prime through the model once, a piece at a time (a long prime never holds the
    logits of all its tokens at once), then give each sample its copy of the state: the
    logits (samples, 1, vocab) after the prime's last token and the state there."""
    if len(prime) == 0:
        raise RnnlmError("the prime must hold at least one token")
    device = next(model.parameters()).device
    ids = torch.as_tensor(np.asarray(prime, dtype=np.int64))
    state = None
    with torch.inference_mode():
        for start in range(0, len(ids), PRIME_PIECE):
            logits, state = model(ids[None, start : start + PRIME_PIECE].to(device), state)
    copies = tuple(s.expand(-1, samples, -1).contiguous() for s in (state if isinstance(state, tuple) else (state,)))
    return logits[:, -1:].expand(samples, -1, -1), copies if len(copies) > 1 else copies[0]


def encode_prime(prime: str, tokenizer: Tokenizer, vocab: Vocab) -> tuple[np.ndarray, int]:
    """Token ids of the prime (after ``xxbos`` at word level) and how many are ``xxunk`` (not in
    the vocab). An empty prime at character level starts from a newline (or the most common token)."""
    ids = tokenizer.encode(prime, vocab).astype(np.int64) if prime else np.zeros(0, dtype=np.int64)
    unknown = int((ids == vocab.unk_id).sum())
    if tokenizer.adds_bos:
        return np.concatenate([[vocab.bos_id], ids]).astype(np.int64), unknown
    if len(ids) == 0:  # a newline's token (BPE writes it as a byte token), else the most common one
        newline = tokenizer.encode("\n", vocab).astype(np.int64)
        if len(newline) and vocab.unk_id not in newline:
            return newline, unknown
        return np.array([min(len(vocab) - 1, 3)], dtype=np.int64), unknown
    return ids, unknown
