"""Measuring a trained run on its own validation split or on any text."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from rnnlm.data.corpus import is_builtin, read_documents, read_named_texts
from rnnlm.data.prepare import is_prepared
from rnnlm.data.documents import split_items
from rnnlm.data.textdata import build_text_data
from rnnlm.data.textdata import characters as characters_of
from rnnlm.data.tokenizers import encode_documents
from rnnlm.errors import RnnlmError, invalid, shown
from rnnlm.evaluation.documents import evaluate_documents
from rnnlm.evaluation.streams import Scores, evaluate_stream, stream_batches_for_eval, text_size
from rnnlm.runfolder import Run

MAX_STREAMS = 1 << 16


def evaluate_run(run: Run, data: str | None = None, encoding: str | None = None, errors: str | None = None,
                 streams: int | None = None) -> Scores:
    """Scores on the validation split of the run's data, or of a built-in dataset or prepared
    folder named by ``data``, or on a file or folder ``data`` read whole (all of its characters
    count for bits per character). ``encoding`` and ``errors`` say how to read its bytes
    (default: as the run read its corpus).

    A run on a list's documents reads each document alone, from a fresh state, its end counted
    (``rnnlm.evaluation.documents``), unless ``streams`` is given. Other runs' ids are cut into
    ``streams`` parallel streams (default: the run's batch size), each read
    with its state carried through; a tail of fewer tokens than streams is dropped. One
    stream reads the text as it is written, no token dropped: the first token is the only one
    not predicted, and the loss is that of ``rnnlm score`` on the same text."""
    if streams is not None and not 1 <= streams <= MAX_STREAMS:
        raise invalid("streams", f"must be in 1..{MAX_STREAMS} (got {streams})")
    settings = replace(run.config.data, encoding=encoding or run.config.data.encoding,
                       errors=errors or run.config.data.errors)
    settings.validate()
    if data is None and not is_builtin(settings.source) and not os.path.lexists(settings.source):
        raise RnnlmError(f"{run.folder}: its corpus {shown(settings.source, 300)} is gone; name the text to evaluate on "
                         f"(rnnlm evaluate {run.folder} FILE)")
    if data is None or is_builtin(data) or is_prepared(data):
        # another corpus: the run's tokenizer and vocab are what it must agree with, not its options
        settings = settings if data is None else replace(settings, source=data, valid=None, vocab_size=None,
                                                                  valid_docs=None)
        text = build_text_data(settings, vocab=run.vocab, tokenizer=run.tokenizer)
        ids, characters = text.valid_ids, text.valid_characters
    elif settings.documents:
        texts = read_named_texts(Path(data), settings.encoding, settings.errors)
        docs = split_items(texts, settings.lines, settings.doc_sep)
        ids, characters = encode_documents(docs, run.tokenizer, run.vocab), characters_of(docs, True)
    else:
        docs = read_documents(Path(data), settings.encoding, settings.errors)
        ids, characters = encode_documents(docs, run.tokenizer, run.vocab), characters_of(docs, settings.documents)
    if len(ids) < 2:
        raise RnnlmError(f"{data or run.config.data.source}: fewer than 2 tokens to evaluate on")
    if settings.documents and streams is None:
        return evaluate_documents(run.model, ids, run.vocab, run.device, characters)
    t = run.config.train
    if streams is None:  # as validation reads it
        batches = stream_batches_for_eval(ids, t.bs, t.bptt)
    else:  # as many streams as asked for
        batches = stream_batches_for_eval(ids, streams, t.bptt, min_stream=1)
    return evaluate_stream(run.model, batches, run.device, text=text_size(ids, characters))
