"""The new text of a fine-tuned run, read with its base's tokenizer: the tokens the base does
not know counted and said (how many, which, what share of the training split), then read as
``xxunk`` or, with ``extend_vocab``, added to the vocab after the base's (every old id stays
the same; their rows start as the mean of the base's, rnnlm.train.layers). A text that shares
no token with the base, or an extension past the vocab's limit, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from rnnlm.config import RunConfig
from rnnlm.data.textdata import TextData, count_tokens, encode_corpus, read_corpus
from rnnlm.data.tokenizers import frame_documents
from rnnlm.data.vocab import SPECIALS, UNK
from rnnlm.distributed import Distributed
from rnnlm.errors import SettingError, literal, shown
from rnnlm.runfolder import MAX_VOCAB
from rnnlm.train.base import BaseRun
from rnnlm.train.recipe import fit_batch_size
from rnnlm.train.setup import check_sizes, settings_of_data

SHOWN_TOKENS = 12  # unknown tokens named in the report


@dataclass(frozen=True)
class VocabChange:
    """The training split's tokens against the base's vocab: how many it has (``total``), those
    the base lacks with their counts (``unknown``, most frequent first), those added to the vocab."""

    base_size: int
    total: int
    unknown: dict[str, int]
    added: list[str]

    @property
    def unknown_count(self) -> int:
        return sum(self.unknown.values())


def base_text_data(config: RunConfig, base: BaseRun, dist: Distributed, check: bool = True
                   ) -> tuple[RunConfig, TextData, VocabChange]:
    """Read and encode the new text with ``base``'s tokenizer and vocab (extended when the
    settings ask); the batch size the user did not give is made small enough for a short text."""
    tokenizer = frame_documents(base.tokenizer, config.data.documents)
    corpus = read_corpus(config.data)
    change = VocabChange(len(base.vocab), 0, {}, [])
    vocab = base.vocab
    if tokenizer.level != "bpe":  # byte-level BPE reads every text: no token is unknown
        counts = count_tokens(corpus.train, tokenizer)
        change = VocabChange(len(base.vocab), sum(counts.values()), base.vocab.unknown(counts), [])
        check_shares_tokens(config, base, counts, change)
        if config.fine_tune.extend_vocab:
            change = replace(change, added=[t for t, n in change.unknown.items() if n >= config.data.min_freq])
            check_vocab_limit(config, change)
            vocab = base.vocab.extended(change.added)
    data = encode_corpus(corpus, config.data, vocab, tokenizer)
    config = settings_of_data(config, data)
    if "bs" not in config.given_fields():
        bs = fit_batch_size(config.train.bs, config.train.bptt, len(data.train_ids), dist.world_size)
        config = replace(config, train=replace(config.train, bs=bs))
    if check:
        check_sizes(data, config.train.bs, config.train.bptt)
    record = replace(config.fine_tune, unknown_tokens=change.unknown_count)
    return replace(config, fine_tune=record), data, change


def check_shares_tokens(config: RunConfig, base: BaseRun, counts: dict[str, int], change: VocabChange) -> None:
    """Refuse a text whose tokens the base does not know, white space aside (a text in another
    script shares its spaces and line breaks, and nothing else)."""
    if any(n for t, n in counts.items() if t not in change.unknown and not t.isspace()):
        return
    raise SettingError("init_from", f"{literal(config.data.source)} shares no token with the base run "
                                    f"{literal(base.folder)} but white space: {change.unknown_count:,} of its "
                                    f"{change.total:,} training tokens are not in its vocab "
                                    f"({literal(tokens_text(change.unknown))}), the others are spaces or line "
                                    "breaks; a base that knows nothing of the text gives it nothing to start from")


def check_vocab_limit(config: RunConfig, change: VocabChange) -> None:
    """The extended vocab must keep to ``max_size`` (tokens besides the specials) and to the ids
    a run folder holds."""
    size = change.base_size + len(change.added)
    limit = config.data.max_size
    if limit is not None and size - len(SPECIALS) > limit:
        raise SettingError("max_size", f"{{extend_vocab}} adds {len(change.added):,} tokens to the base's "
                                       f"{change.base_size - len(SPECIALS):,} (specials aside): {size - len(SPECIALS):,}, "
                                       f"more than {{max_size}} {limit:,}; raise {{max_size}} or {{min_freq}}")
    if size > MAX_VOCAB:
        raise SettingError("extend_vocab", f"{{extend_vocab}} would make a vocab of {size:,} tokens, more than the "
                                           f"{MAX_VOCAB:,} a run holds; raise {{min_freq}}")


def tokens_text(counts: dict[str, int], shown_tokens: int = SHOWN_TOKENS) -> str:
    """The first tokens of ``counts`` with their counts, as ``'é' 120, '£' 3 and 5 more``."""
    parts = [f"{shown(t, 24)} {n:,}" for t, n in list(counts.items())[:shown_tokens]]
    more = len(counts) - shown_tokens
    return ", ".join(parts) + (f" and {more:,} more" if more > 0 else "")


def vocab_report(change: VocabChange, level: str, min_freq: int, spell: Callable[[str], str]) -> list[str]:
    """What the new text's tokens meant for the vocab, in lines to print."""
    if level == "bpe":
        return ["  vocab     the base's byte-level BPE merges are kept (its tokenizer.json): every text is read, "
                "no token is unknown"]
    if not change.unknown:
        return [f"  vocab     every token of the training split is in the base's vocab ({change.base_size:,} tokens)"]
    unit = "characters" if level == "char" else "tokens"
    share = change.unknown_count / max(change.total, 1)
    lines = [f"  unknown   {len(change.unknown):,} kind{'s' if len(change.unknown) > 1 else ''} of token the base's "
             f"vocab lacks: {change.unknown_count:,} of the {change.total:,} {unit} of the training split "
             f"({share:.2%}): {tokens_text(change.unknown)}"]
    if not change.added:
        lines.append(f"            read as {UNK}; {spell('extend_vocab')} gives them rows of their own")
        return lines
    left = len(change.unknown) - len(change.added)
    rest = f"; {left:,} seen fewer than {spell('min_freq')} {min_freq} times read as {UNK}" if left else ""
    lines.append(f"            added: the vocab grows from {change.base_size:,} to {change.base_size + len(change.added):,}"
                 f" tokens, the new rows of the embedding and the output layer starting as the mean of the base's"
                 f"{rest}")
    return lines



def describe_start(config: RunConfig, base: BaseRun, change: VocabChange, spell: Callable[[str], str]) -> list[str]:
    """What a fine-tuned run takes from its base, and what its vocab became, as printed first."""
    ft = config.fine_tune
    chain = f", itself from {' <- '.join(base.chain)}" if base.chain else ""
    lines = [f"{spell('init_from')} {base.describe()}: its weights, architecture and tokenizer{chain}"
             + (" (lower-cased text)" if config.data.lower else "")]
    lines += vocab_report(change, base.level, config.data.min_freq, spell)
    layers = []
    if ft.freeze:
        layers.append(f"the embedding and head alone for the first {ft.freeze:.0%} of the schedule")
    if ft.layer_decay != 1:
        layers.append(f"each recurrent layer at 1/{ft.layer_decay:g} of the rate of the one above")
    if layers:
        lines.append(f"  layers    {'; '.join(layers)}")
    return lines
