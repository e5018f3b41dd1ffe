"""A corpus read into memory, encoded: its tokenizer (learnt on the training split at BPE level),
its vocab (built on the training split), the ids of both splits and, for a list's documents,
the record of which items are which (``rnnlm.data.items``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from rnnlm.config import BPE_DEFAULT_VOCAB, DataConfig
from rnnlm.data.bpe import train_bpe
from rnnlm.data.corpus import Corpus
from rnnlm.data.items import ItemRecord
from rnnlm.data.tokenizers import Tokenizer, encode_documents, frame_documents, make_tokenizer, token_counter
from rnnlm.data.vocab import Vocab


@dataclass
class TextData:
    name: str
    tokenizer: Tokenizer
    vocab: Vocab
    train_ids: np.ndarray
    valid_ids: np.ndarray
    # Characters of each split's text as read (docs/levels.md), the end of each document of a
    # list counted as one; None: a folder prepared before rnnlm counted them.
    train_characters: int | None = None
    valid_characters: int | None = None
    items: ItemRecord | None = None  # a list's documents: which items are training and validation ones
    lines: bool = False  # how a list's documents were read: one a line,
    doc_sep: str | None = None  # or between lines equal to this one


def count_tokens(docs: list[str], tokenizer: Tokenizer) -> Counter:
    """How often each token of ``tokenizer`` occurs in ``docs``."""
    counter = token_counter(tokenizer)
    for doc in docs:
        counter.update(doc)
    return counter.counts()


def build_vocab(docs: list[str], tokenizer: Tokenizer, min_freq: int = 1, max_size: int | None = None) -> Vocab:
    return Vocab.build(count_tokens(docs, tokenizer), min_freq=min_freq, max_size=max_size)


def characters(docs: list[str], documents: bool) -> int:
    """Characters of ``docs``; for a list's documents the end of each counts as one (it is
    predicted as a token at every level, as makemore counts it)."""
    return sum(map(len, docs)) + (len(docs) if documents else 0)


def encode_corpus(corpus: Corpus, config: DataConfig, vocab: Vocab | None = None,
                  tokenizer: Tokenizer | None = None) -> TextData:
    """Encode ``corpus`` (read with the settings ``config``); the tokenizer and the vocab come from
    its training split unless given (a run's own, to resume or evaluate it)."""
    if tokenizer is None and corpus.level == "bpe":
        tokenizer = frame_documents(train_bpe(((True, doc) for doc in corpus.train),
                                              config.vocab_size or BPE_DEFAULT_VOCAB, config.min_freq, config.lower),
                                    corpus.documents)
    elif tokenizer is None:
        tokenizer = make_tokenizer(corpus.level, config.lower, corpus.documents)
    if vocab is None and tokenizer.level == "bpe":
        vocab = tokenizer.vocab
    elif vocab is None:
        vocab = build_vocab(corpus.train, tokenizer, config.min_freq, config.max_size)
        vocab.check_has_tokens(config.source, config.min_freq)
    train_ids = encode_documents(corpus.train, tokenizer, vocab)
    valid_ids = encode_documents(corpus.valid, tokenizer, vocab)
    items = ItemRecord.of(tokenizer, corpus.train, corpus.valid) if corpus.documents else None
    return TextData(corpus.name, tokenizer, vocab, train_ids, valid_ids, characters(corpus.train, corpus.documents),
                    characters(corpus.valid, corpus.documents), items, config.lines, config.doc_sep)
