"""From data settings to token id arrays: read the corpus, build the vocab on train, encode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlm.config import BPE_DEFAULT_VOCAB, DataConfig
from rnnlm.data.bpe import train_bpe
from rnnlm.data.corpus import load_corpus
from rnnlm.data.prepare import is_prepared, open_prepared
from rnnlm.data.tokenizers import Tokenizer, encode_documents, make_tokenizer, token_counter
from rnnlm.data.vocab import Vocab
from rnnlm.errors import RnnlmError, SettingError, literal


@dataclass
class TextData:
    name: str
    tokenizer: Tokenizer
    vocab: Vocab
    train_ids: np.ndarray
    valid_ids: np.ndarray
    # Characters of each split's text as read (docs/levels.md); None: a folder prepared before
    # rnnlm counted them.
    train_characters: int | None = None
    valid_characters: int | None = None


def build_vocab(docs: list[str], tokenizer: Tokenizer, min_freq: int = 1, max_size: int | None = None) -> Vocab:
    counter = token_counter(tokenizer)
    for doc in docs:
        counter.update(doc)
    return Vocab.build(counter.counts(), min_freq=min_freq, max_size=max_size)


def prepared_text_data(config: DataConfig, vocab: Vocab | None = None, tokenizer: Tokenizer | None = None) -> TextData:
    """The memory-mapped ids of a folder written by ``rnnlm prepare``; its vocab and split are fixed."""
    corpus = open_prepared(config.source)
    where = f"{config.source} (prepared)"
    named = literal(where)  # as it stands in a SettingError's message
    if config.valid is not None:
        raise SettingError("valid", f"{named}: {{valid}} cannot change a prepared split; pass {{valid}} to "
                                    "rnnlm prepare")
    if config.level not in (None, corpus.level):
        raise SettingError("level", f"{named}: {{level}} {config.level}, but it was prepared at {corpus.level} level")
    if config.lower and not corpus.lower:
        raise SettingError("lower", f"{named}: {{lower}}, but it was prepared without {{lower}}; prepare it again")
    if config.vocab_size not in (None, corpus.meta.get("bpe_vocab_size")):
        raise SettingError("vocab_size", f"{named}: {{vocab_size}} {config.vocab_size}, but it was prepared with "
                                         f"{corpus.meta.get('bpe_vocab_size')}; prepare it again")
    if vocab is not None and vocab != corpus.vocab:
        raise RnnlmError(f"{where}: its vocab differs from the model's (was it prepared again?)")
    if tokenizer is not None and tokenizer.level == "bpe" and tokenizer != corpus.tokenizer:
        raise RnnlmError(f"{where}: its tokenizer.json differs from the model's (was it prepared again?)")
    return TextData(corpus.name, corpus.tokenizer, corpus.vocab, corpus.train_ids, corpus.valid_ids,
                    *corpus.characters)


def build_text_data(config: DataConfig, vocab: Vocab | None = None, tokenizer: Tokenizer | None = None) -> TextData:
    """Read and encode the corpus of ``config``; the tokenizer (BPE level) and the vocab come from
    its training split unless given (a run's own, to resume or evaluate it).

    A folder written by ``rnnlm prepare`` is memory-mapped instead (see ``prepared_text_data``).
    """
    if is_prepared(config.source):
        return prepared_text_data(config, vocab, tokenizer)
    corpus = load_corpus(config.source, config.valid_frac, config.valid, config.level,
                         config.encoding, config.errors)
    if tokenizer is None and corpus.level == "bpe":
        tokenizer = train_bpe(((True, doc) for doc in corpus.train), config.vocab_size or BPE_DEFAULT_VOCAB,
                              config.min_freq, config.lower)
    elif tokenizer is None:
        tokenizer = make_tokenizer(corpus.level, config.lower)
    if vocab is None and tokenizer.level == "bpe":
        vocab = tokenizer.vocab
    elif vocab is None:
        vocab = build_vocab(corpus.train, tokenizer, config.min_freq, config.max_size)
        vocab.check_has_tokens(config.source, config.min_freq)
    train_ids = encode_documents(corpus.train, tokenizer, vocab)
    valid_ids = encode_documents(corpus.valid, tokenizer, vocab)
    return TextData(corpus.name, tokenizer, vocab, train_ids, valid_ids,
                    sum(map(len, corpus.train)), sum(map(len, corpus.valid)))
