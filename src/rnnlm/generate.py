"""Stateful generation: feed the prime once, then one token per step carrying the hidden state.

Each new token costs one step of the recurrent network, O(1) in the length so far, unlike the
lessons' sliding window that re-reads the last n characters from a zero state for every token.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence, TextIO

import torch

from rnnlm.data.tokenizers import Tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.errors import RnnlmError
from rnnlm.models import RecurrentLM, State


def pick_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token ids (bs,) from logits (bs, vocab): argmax, or a draw after temperature, top-k, top-p."""
    if greedy:
        return logits.argmax(-1)
    logits = logits.float()
    logits = (logits - logits.amax(-1, keepdim=True)) / temperature  # no overflow for a tiny temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
        outside = before >= top_p
        outside[:, 0] = False  # the most likely token always stays (a top_p below float32's range is 0)
        sorted_logits = sorted_logits.masked_fill(outside, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def sample_ids(
    model: RecurrentLM,
    prime: list[int],
    n: int,
    *,
    samples: int = 1,
    seed: int | None = None,
    banned: Sequence[int] = (),
    **pick: object,
) -> Iterator[torch.Tensor]:
    """Yield ``n`` steps of next-token ids, each of shape (samples,); ``banned`` ids are never drawn."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    model.eval()
    banned_ids = torch.tensor(banned, dtype=torch.long, device=device)
    logits, state = feed_prime(model, prime, samples)
    for _ in range(n):
        last = logits[:, -1]
        if banned:
            last = last.index_fill(-1, banned_ids, float("-inf"))
        next_ids = pick_next(last, generator=generator, **pick)
        yield next_ids
        with one_step_kernels():
            logits, state = model(next_ids[:, None], state)


@contextmanager
def one_step_kernels() -> Iterator[None]:
    """Torch's own recurrent kernels instead of oneDNN's for one step at a time.

    On the CPU, oneDNN's LSTM reorders every weight matrix on each call: cheap next to a
    training batch, but about 10x the cost of the step itself at one token (0.7 ms against
    8.8 ms a step for a 2-layer 512 LSTM; benchmarks/README.md). Entered around each call only,
    since the setting is process-wide.
    """
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


PRIME_PIECE = 1024  # tokens of the prime run through the model at a time


def feed_prime(model: RecurrentLM, prime: list[int], samples: int) -> tuple[torch.Tensor, State]:
    """Run the prime through the model once, a piece at a time (a long prime never holds the
    logits of all its tokens at once), then give each sample its copy of the state: the
    logits (samples, 1, vocab) after the prime's last token and the state there."""
    if not prime:
        raise RnnlmError("the prime must hold at least one token")
    device = next(model.parameters()).device
    state = None
    for start in range(0, len(prime), PRIME_PIECE):
        x = torch.tensor([prime[start : start + PRIME_PIECE]], dtype=torch.long, device=device)
        logits, state = model(x, state)
    copies = tuple(s.expand(-1, samples, -1).contiguous() for s in (state if isinstance(state, tuple) else (state,)))
    return logits[:, -1:].expand(samples, -1, -1), copies if len(copies) > 1 else copies[0]


def encode_prime(prime: str, tokenizer: Tokenizer, vocab: Vocab, warn: TextIO | None = None) -> list[int]:
    """Token ids of the prime (after ``xxbos`` at word level). Unknown tokens become ``xxunk``
    with a warning; an empty prime at character level starts from a newline (or the most common token)."""
    ids = tokenizer.encode(prime, vocab).tolist() if prime else []
    unknown = ids.count(vocab.unk_id)
    if unknown:
        print(f"warning: {unknown} token(s) of the prime are not in the vocab; read as xxunk",
              file=warn or sys.stderr)
    if tokenizer.adds_bos:
        return [vocab.bos_id] + ids
    if not ids:
        return [vocab.stoi.get("\n", min(len(vocab) - 1, 3))]
    return ids


def generate(
    model: RecurrentLM,
    tokenizer: Tokenizer,
    vocab: Vocab,
    prime: str = "",
    n: int = 200,
    *,
    samples: int = 1,
    seed: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    warn: TextIO | None = None,
) -> Iterator[list[str]]:
    """Yield, step by step, the text piece of each sample's next token (for streaming)."""
    check_sampling(n, samples, temperature, top_k, top_p, seed)
    ids = encode_prime(prime, tokenizer, vocab, warn)
    banned = [vocab.unk_id, vocab.pad_id] + ([] if tokenizer.adds_bos else [vocab.bos_id])
    for step in sample_ids(model, ids, n, samples=samples, seed=seed, banned=banned,
                           temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy):
        yield [tokenizer.piece(vocab.itos[i]) for i in step.tolist()]


def generate_text(model: RecurrentLM, tokenizer: Tokenizer, vocab: Vocab, prime: str = "", n: int = 200, **kw) -> list[str]:
    """Whole samples: the prime followed by ``n`` generated tokens, one string per sample."""
    columns = list(generate(model, tokenizer, vocab, prime, n, **kw))
    samples = len(columns[0]) if columns else kw.get("samples", 1)
    return [join_prime(tokenizer, prime, [col[s] for col in columns]) for s in range(samples)]


def join_prime(tokenizer: Tokenizer, prime: str, pieces: list[str]) -> str:
    text = tokenizer.join(pieces)
    if not prime:
        return text
    return prime + (" " if tokenizer.level == "word" and text else "") + text


MAX_TOKENS = 10_000_000  # -n times --samples: every piece of every sample is kept until the end
MAX_SEED = 2**64 - 1  # torch's generators take seeds up to here


def check_sampling(n: int, samples: int, temperature: float, top_k: int | None, top_p: float | None,
                   seed: int | None = None) -> None:
    if not 0 <= n <= 100_000:
        raise RnnlmError(f"-n must be in 0..100000 (got {n})")
    if not 1 <= samples <= 1000:
        raise RnnlmError(f"--samples must be in 1..1000 (got {samples})")
    if n * samples > MAX_TOKENS:
        raise RnnlmError(f"-n x --samples must be at most {MAX_TOKENS:,} tokens (got {n * samples:,})")
    if not 0 < temperature < math.inf:
        raise RnnlmError(f"--temperature must be a finite number > 0 (got {temperature})")
    if top_k is not None and top_k < 1:
        raise RnnlmError(f"--top-k must be >= 1 (got {top_k})")
    if top_p is not None and not 0 < top_p <= 1:
        raise RnnlmError(f"--top-p must be in (0, 1] (got {top_p})")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise RnnlmError(f"--seed must be in 0..{MAX_SEED} (got {seed})")
