"""Per-token surprisal: how many nats each token of a text costs the model, given all before it.

The text is read as one stream, as ``rnnlm evaluate --streams 1`` reads it: the state carries
through the whole text, which runs through the model in pieces of ``PIECE`` tokens (a long
text never holds the logits of all its tokens at once). The model predicts token t+1 from tokens
..t, so N tokens give N-1 predictions: at character level the first character has nothing
before it and no log-probability; at word level the stream starts with ``xxbos`` (as every
document does in training), which is the first input, so every word of the text is predicted.
No token is dropped: the total equals ``evaluate --streams 1`` on the same file.

Bits per character follow docs/levels.md, as ``rnnlm evaluate`` counts them: the mean nats per
predicted token times the text's tokens (the first one counted at the mean), over the
characters of the text, / ln 2; at character level that is bits per token. Perplexity is per
token.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from tqdm import tqdm

from rnnlm.data.corpus import normalize_newlines, read_text_input
from rnnlm.data.tokenizers import WORD_RE, Tokenizer, code_points
from rnnlm.data.vocab import SPECIALS, Vocab
from rnnlm.device import memory_bytes, size_text
from rnnlm.errors import RnnlmError, SettingError, invalid
from rnnlm.evaluation.documents import boundary_state
from rnnlm.inspect.trace import forward_traced, state_kind
from rnnlm.runfolder import Run

PIECE = 1024  # tokens run through the model at a time
MAX_TOP = 100  # alternatives kept per token at most


@dataclass(frozen=True)
class UnitChoice:
    """Which hidden units to trace: ``layer`` 1..layers (None: the last), ``unit`` 0..hidden-1
    (None: every unit of the layer, as the feature ranking needs)."""

    layer: int | None = None
    unit: int | None = None


@dataclass
class Trace:
    """Activations (tokens, units) of ``units`` of ``layer`` (1-based) after each token was read."""

    layer: int
    layers: int
    kind: str  # "cell state" (LSTM) or "hidden state"
    units: list[int]
    values: np.ndarray  # (N, len(units)) float32

    def of(self, unit: int) -> np.ndarray:
        """The activations (N,) of one traced unit."""
        return self.values[:, self.units.index(unit)]


@dataclass
class SurprisingSpan:
    start: int  # character offsets in the scored text
    end: int
    first: int  # token indices, last one included
    last: int
    nats: float  # total surprisal of its tokens


@dataclass
class Scoring:
    """Every token of a text with its surprisal and the model's top alternatives.

    Token i stands for ``text[starts[i]:ends[i]]`` (``xxbos`` at word level: an empty span at 0);
    ``logprobs[i]`` is ln p(token i | tokens before it), NaN for token 0, which nothing precedes;
    ``top_ids[i]``/``top_logprobs[i]`` the most likely tokens at that step, best first."""

    run: str  # the run folder's name
    text: str  # the text as scored: line ends made \\n
    level: str
    vocab: Vocab
    tokenizer: Tokenizer
    ids: np.ndarray  # (N,)
    starts: np.ndarray  # (N,)
    ends: np.ndarray  # (N,)
    logprobs: np.ndarray  # (N,) float64
    top_ids: np.ndarray  # (N, K)
    top_logprobs: np.ndarray  # (N, K) float32
    unknown: int  # tokens of the text outside the vocab (read as xxunk)
    trace: Trace | None = None

    @property
    def token_count(self) -> int:
        return len(self.ids)

    @property
    def predicted(self) -> int:
        return len(self.ids) - 1

    @property
    def total_nats(self) -> float:
        return float(-self.logprobs[1:].sum())

    @property
    def loss(self) -> float:
        """Mean nats per predicted token, as ``rnnlm evaluate`` reports."""
        return self.total_nats / self.predicted

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bits_per_char(self) -> float:
        return self.loss * self.token_count / len(self.text) / math.log(2)

    @cached_property
    def shown_tokens(self) -> list[str]:
        """The text each vocab token stands for (specials by their names; at BPE level a
        token's bytes decoded, U+FFFD for part of a character)."""
        return self.vocab.itos if self.tokenizer.level != "bpe" else [
            t if t in SPECIALS else self.tokenizer.piece(t) for t in self.vocab.itos]

    @property
    def surprisal(self) -> np.ndarray:
        """Nats of every token (N,); 0 for the first, which is not predicted."""
        return np.nan_to_num(-self.logprobs, nan=0.0)

    def token_text(self, i: int) -> str:
        return self.text[self.starts[i] : self.ends[i]]

    def surprising_spans(self, count: int = 5) -> list[SurprisingSpan]:
        """The runs of consecutive surprising tokens (each above twice the mean surprisal, and
        above 1 nat), the ``count`` costliest first. A well-fitted text with no such token gives
        its ``count`` costliest tokens one by one."""
        s = self.surprisal
        high = s > max(2 * self.loss, 1.0)
        runs = np.flatnonzero(np.diff(np.concatenate([[0], high.astype(np.int8), [0]])))
        bounds = list(zip(runs[0::2], runs[1::2] - 1))
        if not bounds:
            bounds = [(i, i) for i in np.argsort(-s, kind="stable")[:count]]
        cs = np.concatenate([[0.0], np.cumsum(s)])
        spans = [SurprisingSpan(int(self.starts[a]), int(self.ends[b]), int(a), int(b), float(cs[b + 1] - cs[a]))
                 for a, b in bounds]
        return sorted(spans, key=lambda sp: -sp.nats)[:count]

    def _repr_html_(self) -> str:
        """The page of ``rnnlm score --html``: every character coloured by its surprisal (by the
        traced unit when there is one), the top predictions on hover; as a notebook shows it."""
        from rnnlm.inspect.document import document
        from rnnlm.inspect.page import render_page
        from rnnlm.notebook import page_frame

        return page_frame(render_page(document(self, unit=self.trace.units[0] if self.trace else None)))


def utf8_lengths(text: str) -> np.ndarray:
    """The bytes each character of ``text`` takes in UTF-8 (N,)."""
    codes = code_points(text)
    return 1 + (codes >= 0x80).astype(np.int64) + (codes >= 0x800) + (codes >= 0x10000)


def encode_with_spans(text: str, tokenizer: Tokenizer, vocab: Vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids (N,) of ``text`` as the tokenizer makes them (``xxbos`` first at word level and for
    a list's documents), with each token's character span in ``text``. Where a character is cut
    between tokens (a character whose lower case is two, a BPE token ending inside a multi-byte
    character), it belongs to the token its last part is in; the token before it has an empty
    span there."""
    lowered = tokenizer.normalize(text) if tokenizer.level != "word" else text.lower() if tokenizer.lower else text
    origin = np.arange(len(text) + 1)
    if len(lowered) != len(text):  # a character whose lower case is longer (U+0130 lowers to 2)
        lengths = [len(c.lower()) for c in text]
        origin = np.concatenate([np.repeat(np.arange(len(text)), lengths), [len(text)]])
    if tokenizer.level != "word":
        return document_start(tokenizer, vocab, *character_spans(text, tokenizer, vocab, lowered, origin))
    matches = list(WORD_RE.finditer(lowered))
    ids = np.concatenate([np.array([vocab.bos_id], dtype=vocab.dtype),
                          vocab.encode_tokens(m.group() for m in matches)])
    starts = np.array([0] + [origin[m.start()] for m in matches], dtype=np.int64)
    ends = np.array([0] + [origin[m.end()] for m in matches], dtype=np.int64)
    return ids, starts, ends


def character_spans(text: str, tokenizer: Tokenizer, vocab: Vocab, lowered: str,
                    origin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``encode_with_spans`` at character and BPE level."""
    ids = tokenizer.encode(text, vocab)
    if tokenizer.level == "char":
        return ids, origin[:-1], origin[1:]
    token_bytes = np.array([len(b) for b in tokenizer.token_bytes], dtype=np.int64)
    char_ends = np.cumsum(utf8_lengths(lowered))  # the byte after each character
    token_ends = np.searchsorted(char_ends, np.cumsum(token_bytes[ids]), side="right")  # characters done
    return ids, origin[np.concatenate([[0], token_ends[:-1]])], origin[token_ends]


def document_start(tokenizer: Tokenizer, vocab: Vocab, ids: np.ndarray, starts: np.ndarray,
                   ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run on a list's documents reads a text as a document: from ``xxbos`` (an empty span)."""
    if not tokenizer.documents:
        return ids, starts, ends
    return (np.concatenate([np.array([vocab.bos_id], dtype=ids.dtype), ids]), np.concatenate([[0], starts]),
            np.concatenate([[0], ends]))


def bytes_per_token(top: int, units: int) -> int:
    """Memory a scored token takes: ids, spans, log-probabilities, alternatives, activations and
    the text itself, with room to spare."""
    return 96 + 12 * top + 4 * units


def trace_choice(layer: int | None, unit: int | None, feature: bool | None = None) -> UnitChoice | None:
    """What to trace: ``unit`` of ``layer`` (None: the last layer), or every unit of ``layer`` to
    rank them for a feature (``feature``: True when one is asked for, None where the caller offers
    no feature ranking); None when nothing is traced. A layer alone traces nothing."""
    if layer is not None and unit is None and not feature:
        ranking = "; give it too" if feature is None else " or {feature}; give one of them"
        raise SettingError("layer", "{layer} chooses the layer of {unit}" + ranking)
    if unit is None and not feature:
        return None
    return UnitChoice(layer, None if feature else unit)


def resolve_units(run: Run, choice: UnitChoice) -> tuple[int, list[int]]:
    """The 1-based layer and the unit numbers a choice stands for, checked against the model."""
    layers, hidden = run.config.model.layers, run.config.model.hidden
    layer = layers if choice.layer is None else choice.layer
    if not 1 <= layer <= layers:
        raise invalid("layer", f"must be in 1..{layers}, the model's layers (got {layer})")
    if choice.unit is None:
        return layer, list(range(hidden))
    if not 0 <= choice.unit < hidden:
        raise invalid("unit", f"must be in 0..{hidden - 1}, the model's hidden size being {hidden} "
                              f"(got {choice.unit})")
    return layer, [choice.unit]


def check_top(top: int, vocab_size: int | None = None) -> None:
    """Alternatives per token: at most ``MAX_TOP``, and no more than the vocab holds (when known)."""
    most = MAX_TOP if vocab_size is None else min(MAX_TOP, vocab_size)
    if not 0 <= top <= most:
        raise invalid("top", f"must be in 0..{most} (got {top})")


def check_fits(tokens: int, top: int, units: int, what: str) -> None:
    """Refuse a text whose scoring would take more than half of this machine's memory."""
    need = tokens * bytes_per_token(top, units)
    memory = memory_bytes(torch.device("cpu"))
    if 2 * need > memory:
        message = (f"{what}: scoring it needs about {size_text(need)}, more than half of this machine's "
                   f"{size_text(memory)} of memory; score a part of it")
        if units > 1:
            raise SettingError("unit", message + ", or trace one {unit}")
        raise RnnlmError(message)


@torch.inference_mode()
def score_text(run: Run, text: str, top: int = 5, unit: UnitChoice | None = None, progress: bool = False) -> Scoring:
    """Score ``text`` as one stream under ``run``'s model (see the module's docstring): every
    token's log-probability and its ``top`` most likely alternatives, and with ``unit`` the
    activations of the chosen hidden units after each token."""
    check_top(top, len(run.vocab))
    layer, units = resolve_units(run, unit) if unit is not None else (None, [])
    text = normalize_newlines(text)
    if not text:
        raise RnnlmError("the text is empty")
    most = len(text) + 1 if run.tokenizer.level != "bpe" else int(utf8_lengths(text).sum())  # tokens at most
    check_fits(most, top, len(units), "the text")
    ids, starts, ends = encode_with_spans(text, run.tokenizer, run.vocab)
    first_word = 1 if run.tokenizer.adds_bos else 0
    unknown = int((ids[first_word:] == run.vocab.unk_id).sum())
    if len(ids) == first_word:
        raise RnnlmError("the text holds no words")
    if unknown == len(ids) - first_word:
        raise RnnlmError("the text shares no token with the model's vocab (every token would be xxunk)")
    n = len(ids)
    if n < 2:
        raise RnnlmError("the text must hold at least 2 tokens (the first is not predicted)")
    logprobs = np.full(n, np.nan)
    top_ids = np.zeros((n, top), dtype=np.int32)
    top_logprobs = np.zeros((n, top), dtype=np.float32)
    values = np.zeros((n, len(units)), dtype=np.float32) if units else None
    model, device = run.model, run.device
    model.eval()
    state = boundary_state(model, run.vocab) if run.tokenizer.documents else None  # where a list's item starts
    columns = torch.tensor(units, dtype=torch.long, device=device)
    targets_all = torch.from_numpy(ids.astype(np.int64))
    with tqdm(total=n, unit="tok", disable=not progress, leave=False, file=sys.stderr) as bar:
        for start in range(0, n, PIECE):
            stop = min(start + PIECE, n)
            x = targets_all[start:stop].to(device)[None]
            if units:
                logits, state, trace = forward_traced(model, x, state, layer - 1)
                values[start:stop] = trace[0].index_select(-1, columns).float().cpu().numpy()
            else:
                logits, state = model(x, state)
            lp = logits[0].float().log_softmax(-1)  # (T, V): the distribution of the token after each
            predicted = min(stop, n - 1) - start  # the last token of the text predicts nothing
            rows = slice(start + 1, start + 1 + predicted)
            targets = targets_all[rows].to(device)
            logprobs[rows] = lp[:predicted].gather(-1, targets[:, None])[:, 0].double().cpu().numpy()
            if top:
                best = lp[:predicted].topk(top, dim=-1)
                top_ids[rows] = best.indices.cpu().numpy()
                top_logprobs[rows] = best.values.cpu().numpy()
            bar.update(stop - start)
    traced = None
    if units:
        traced = Trace(layer, run.config.model.layers, state_kind(model), units, values)
    return Scoring(run.folder.name, text, run.tokenizer.level, run.vocab, run.tokenizer, ids, starts, ends, logprobs,
                   top_ids, top_logprobs, unknown, traced)


def read_score_text(path: str, encoding: str = "utf-8", errors: str = "strict", top: int = 5,
                    units: int = 0) -> str:
    """The text of a file (or of stdin for ``-``) as training text is read, refused before it is
    read when scoring it could not fit in memory (one token per byte at most)."""
    memory = memory_bytes(torch.device("cpu"))
    limit = memory // 2 // bytes_per_token(top, units)

    def too_large(where: str, size: int | None) -> RnnlmError:
        if size is None:
            return RnnlmError(f"standard input: more than {size_text(limit)}, too much text to score here")
        return RnnlmError(f"{where}: {size_text(size)} of text, more than the {size_text(limit)} rnnlm score can "
                          "hold in this machine's memory" + (" tracing every unit" if units > 1 else "")
                          + "; score a part of it")

    return read_text_input(path, encoding, errors, limit, too_large)
