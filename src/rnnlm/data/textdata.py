"""From data settings to token id arrays: read the corpus, build the vocab on train, encode."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from rnnlm.config import DataConfig
from rnnlm.data.corpus import load_corpus
from rnnlm.data.tokenizers import Tokenizer, encode_documents, make_tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.errors import RnnlmError


@dataclass
class TextData:
    name: str
    tokenizer: Tokenizer
    vocab: Vocab
    train_ids: np.ndarray
    valid_ids: np.ndarray


def build_vocab(docs: list[str], tokenizer: Tokenizer, min_freq: int = 1, max_size: int | None = None) -> Vocab:
    counts: Counter = Counter()
    for doc in docs:
        counts.update(tokenizer.count(doc))
    return Vocab.build(counts, min_freq=min_freq, max_size=max_size)


def build_text_data(config: DataConfig, vocab: Vocab | None = None) -> TextData:
    """Read and encode the corpus of ``config``; the vocab comes from its training split unless given."""
    corpus = load_corpus(config.source, config.valid_frac, config.valid, config.level,
                         config.encoding, config.errors)
    tokenizer = make_tokenizer(corpus.level, config.lower)
    if vocab is None:
        vocab = build_vocab(corpus.train, tokenizer, config.min_freq, config.max_size)
        if len(vocab) == len(Vocab.build({}).itos):
            raise RnnlmError(f"{config.source}: no token occurs --min-freq {config.min_freq} times in the training split")
    train_ids = encode_documents(corpus.train, tokenizer, vocab)
    valid_ids = encode_documents(corpus.valid, tokenizer, vocab)
    return TextData(corpus.name, tokenizer, vocab, train_ids, valid_ids)
