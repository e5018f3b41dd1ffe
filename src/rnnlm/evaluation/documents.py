"""Measuring a model on the documents of a list, one document at a time, as makemore does, and
the state a document starts from.

A list's ids are ``xxbos d1 xxbos d2 ... xxbos dn xxbos``. Each document is read alone, starting
at the ``xxbos`` before it, and scored on its tokens and on the ``xxbos`` after it, its end: the
loss counts the end of every item, and no item sees another (in a stream it would, and the order
of a list given to evaluate may say much about its next item: a sorted list). The documents go
through the model in batches of similar lengths, padded at their ends (the padding is never
scored, and cannot change what comes before it).

Where a document starts (``boundary_state``): training reads a list as streams, its state carried
across the boundaries (fast, and no padding), so the model meets ``xxbos`` after an item, never
in the zero state. It is read from the state the model is in after an item of its own: from the
zero state it writes one item (seed 0, temperature 1), and the state just before it would read
that item's end is where every document starts, in evaluation and in generation. No text of any
corpus goes into it. On the word list of benchmarks/lists.py this start scores what the
validation stream scores with its state carried (2.0588 nats/char against 2.0589, from the zero
state 2.0788); docs/lists.md has the measurements.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.data.vocab import Vocab
from rnnlm.evaluation.streams import Scores, TextSize
from rnnlm.models.recurrent import RecurrentLM, State

BOUNDARY_SEED = 0
BOUNDARY_TOKENS = 2000  # an item the model writes to reach its boundary state is cut here, if it runs on
LOGITS_PER_BATCH = 1 << 24  # batch tokens x vocab: the logits of one batch stay in some 64 MB
MAX_DOCS_PER_BATCH = 512


def document_spans(ids: np.ndarray, bos_id: int) -> np.ndarray:
    """``(n, 2)``: where each document's ``xxbos`` is, and where the ``xxbos`` after it is."""
    marks = np.flatnonzero(np.asarray(ids) == bos_id)
    return np.stack([marks[:-1], marks[1:]], axis=1) if len(marks) > 1 else np.zeros((0, 2), dtype=np.int64)


def batches_of(spans: np.ndarray, vocab_size: int) -> list[np.ndarray]:
    """The documents (rows of ``spans``) grouped by length, each group's padded logits in budget."""
    lengths = spans[:, 1] - spans[:, 0]
    order = np.argsort(lengths, kind="stable")
    per_batch = max(1, LOGITS_PER_BATCH // vocab_size)
    groups, start = [], 0
    while start < len(order):
        stop = start + 1
        while (stop < len(order) and stop - start < MAX_DOCS_PER_BATCH
               and (stop + 1 - start) * lengths[order[stop]] <= per_batch):
            stop += 1
        groups.append(order[start:stop])
        start = stop
    return groups


@torch.inference_mode()
def boundary_state(model: RecurrentLM, vocab: Vocab) -> State:
    """The state a document starts from: the model's own, after it has written one item from the
    zero state (see the module), without xxunk or xxpad. (layers, 1, H)."""
    was_training = model.training
    model.eval()
    try:
        return written_item_state(model, vocab.bos_id, [vocab.unk_id, vocab.pad_id])
    finally:
        model.train(was_training)


def written_item_state(model: RecurrentLM, bos_id: int, banned: list[int]) -> State:
    """The state after the last token of an item the model writes from the zero state."""
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(BOUNDARY_SEED)
    state, token = None, bos_id
    for _ in range(BOUNDARY_TOKENS):
        logits, state = model(torch.tensor([[token]], device=device), state)
        probs = logits[0, -1].float().softmax(-1).cpu()  # (V,)
        probs[banned] = 0
        token = int(torch.multinomial(probs, 1, generator=generator))
        if token == bos_id:
            break
    return state


def repeat_state(state: State, n: int) -> State:
    """``state`` of one stream, (layers, 1, H), for ``n`` streams."""
    if isinstance(state, tuple):
        return tuple(s.expand(-1, n, -1).contiguous() for s in state)
    return state.expand(-1, n, -1).contiguous()


@torch.inference_mode()
def evaluate_documents(model: RecurrentLM, ids: np.ndarray, vocab: Vocab, device: torch.device,
                       characters: int | None = None, start: State | None = None) -> Scores:
    """Scores of the documents of ``ids``, each read alone from the state ``start`` (default: the
    model's ``boundary_state``), its end counted (see the module). ``characters``: of their text,
    the end of each counted as one (for bits per character); the scores' ``documents`` is how
    many there were."""
    spans = document_spans(ids, vocab.bos_id)
    if start is None:
        start = boundary_state(model, vocab)
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, right guesses, tokens
    for group in batches_of(spans, model.vocab_size):
        rows = spans[group]
        width = int((rows[:, 1] - rows[:, 0]).max())
        x = np.full((len(rows), width), vocab.pad_id, dtype=np.int64)  # (N, T)
        y = np.full((len(rows), width), -100, dtype=np.int64)  # (N, T): -100 is not scored
        for r, (first, end) in enumerate(rows):
            x[r, : end - first] = ids[first:end]
            y[r, : end - first] = ids[first + 1 : end + 1]
        target = torch.from_numpy(y).to(device).reshape(-1)
        logits, _ = model(torch.from_numpy(x).to(device), repeat_state(start, len(rows)))
        flat = logits.reshape(-1, logits.shape[-1]).float()  # (N*T, V)
        scored = target != -100
        sums[0] += F.cross_entropy(flat, target, ignore_index=-100, reduction="sum").double()
        sums[1] += (flat.argmax(-1)[scored] == target[scored]).sum()
        sums[2] += scored.sum()
    model.train(was_training)
    loss_sum, correct, count = sums.tolist()
    text = TextSize(int(count), characters) if characters else None
    if count == 0:
        return Scores(float("nan"), float("nan"), 0, text, documents=0)
    return Scores(loss_sum / count, correct / count, int(count), text, documents=len(spans))
