"""From data settings to token id arrays: read the corpus, build the vocab on train, encode
(``rnnlm.data.encoding``), or memory-map a folder written by ``rnnlm prepare``."""

from __future__ import annotations

from rnnlm.config import DataConfig
from rnnlm.data.corpus import Corpus, load_corpus
from rnnlm.data.encoding import TextData, build_vocab, characters, count_tokens, encode_corpus
from rnnlm.data.prepare import is_prepared, open_prepared
from rnnlm.data.tokenizers import Tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.errors import RnnlmError, SettingError, literal

__all__ = ["TextData", "build_text_data", "build_vocab", "characters", "count_tokens", "encode_corpus",
           "prepared_text_data", "read_corpus"]


def prepared_text_data(config: DataConfig, vocab: Vocab | None = None, tokenizer: Tokenizer | None = None) -> TextData:
    """The memory-mapped ids of a folder written by ``rnnlm prepare``; its vocab and split are fixed."""
    corpus = open_prepared(config.source)
    where = f"{config.source} (prepared)"
    named = literal(where)  # as it stands in a SettingError's message
    for field in ("valid", "valid_docs"):
        if getattr(config, field) is not None:
            raise SettingError(field, f"{named}: {{{field}}} cannot change a prepared split; pass {{{field}}} to "
                                      "rnnlm prepare")
    if config.level not in (None, corpus.level):
        raise SettingError("level", f"{named}: {{level}} {config.level}, but it was prepared at {corpus.level} level")
    if config.lower and not corpus.lower:
        raise SettingError("lower", f"{named}: {{lower}}, but it was prepared without {{lower}}; prepare it again")
    if config.vocab_size not in (None, corpus.meta.get("bpe_vocab_size")):
        raise SettingError("vocab_size", f"{named}: {{vocab_size}} {config.vocab_size}, but it was prepared with "
                                         f"{corpus.meta.get('bpe_vocab_size')}; prepare it again")
    if (config.lines, config.doc_sep) not in ((False, None), (corpus.lines, corpus.doc_sep)):
        field = "lines" if config.lines else "doc_sep"
        raise SettingError(field, f"{named}: it was prepared {documents_text(corpus.lines, corpus.doc_sep)}; its "
                                  "documents are fixed there (pass {lines} or {doc_sep} to rnnlm prepare)")
    if vocab is not None and vocab != corpus.vocab:
        raise RnnlmError(f"{where}: its vocab differs from the model's (was it prepared again?)")
    if tokenizer is not None and tokenizer.level == "bpe" and tokenizer != corpus.tokenizer:
        raise RnnlmError(f"{where}: its tokenizer.json differs from the model's (was it prepared again?)")
    return TextData(corpus.name, corpus.tokenizer, corpus.vocab, corpus.train_ids, corpus.valid_ids,
                    *corpus.characters, corpus.items, corpus.lines, corpus.doc_sep)


def documents_text(lines: bool, doc_sep: str | None) -> str:
    """How a prepared folder's documents were read, as its error messages say it."""
    if lines:
        return "with {lines}"
    return "without {lines} or {doc_sep}" if doc_sep is None else f"with {{doc_sep}} {literal(repr(doc_sep))}"


def build_text_data(config: DataConfig, vocab: Vocab | None = None, tokenizer: Tokenizer | None = None) -> TextData:
    """Read and encode the corpus of ``config``; the tokenizer (BPE level) and the vocab come from
    its training split unless given (a run's own, to resume or evaluate it).

    A folder written by ``rnnlm prepare`` is memory-mapped instead (see ``prepared_text_data``).
    """
    if is_prepared(config.source):
        return prepared_text_data(config, vocab, tokenizer)
    return encode_corpus(read_corpus(config), config, vocab, tokenizer)


def read_corpus(config: DataConfig) -> Corpus:
    """The text of ``config``'s source read into memory and split, not yet encoded."""
    return load_corpus(config.source, config.valid_frac, config.valid, config.level, config.encoding,
                       config.errors, lines=config.lines, doc_sep=config.doc_sep, valid_docs=config.valid_docs)
