"""The base of a fine-tuned run (``init_from``): a finished run folder, read once and never
written, and the settings the new run takes from it.

A base may come from anywhere, so it is read only through ``rnnlm.runfolder`` (JSON and
safetensors, every file checked against the others, the weights finite) under a shared lock on
a read-only descriptor: a run that another process is training now is refused, and so is one
whose training stopped before its end. The new run keeps the base's architecture and tokenizer
(level, lower-casing, BPE merges); a model or tokenizer setting the user gave that contradicts
them is refused, naming it. Everything about training is the new run's own; the settings the
user did not give start from the base's (batch, bptt, weight decay, clipping, regularisation)
or from the fine-tuning defaults (the base's peak rate, and at least 0.5 dropout between layers:
the winners of benchmarks/fine_tune.py).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from rnnlm.config import RunConfig
from rnnlm.data.prepare import is_prepared
from rnnlm.errors import RnnlmError, SettingError, literal
from rnnlm.runfolder import BEST, STATE, load_run, reading_run_folder
from rnnlm.train.checkpoint import read_state_position

ARCHITECTURE = ("cell", "layers", "emb", "hidden", "tie", "locked_dropout")
TOKENIZER = ("level", "lower", "vocab_size")
FROM_BASE = ("emb_dropout", "weight_dropout", "dropout", "bs", "bptt", "wd", "clip", "ar", "tar")
MIN_DROPOUT = 0.5  # the dropout between layers, unless given: the base's, or this where the base's is lower


@dataclass
class BaseRun:
    """A base run as read: its folder, name, settings, vocab, tokenizer and weights (on the CPU)."""

    folder: Path
    name: str
    config: RunConfig
    vocab: Any  # rnnlm.data.vocab.Vocab
    tokenizer: Any  # rnnlm.data.tokenizers.Tokenizer
    weights: dict[str, torch.Tensor]
    sha256: str

    @property
    def level(self) -> str:
        return self.tokenizer.level

    @property
    def chain(self) -> list[str]:
        """The run folders this one started from, nearest first (empty: it trained from scratch)."""
        own = self.config.fine_tune
        if own is None or own.init_from is None:
            return []
        return [own.init_from, *(own.base_chain or [])]

    def describe(self) -> str:
        m = self.config.model
        return (f"{self.folder} ({self.config.data.source and Path(self.config.data.source).name}; {self.level} "
                f"level, {m.cell} {m.layers} x {m.hidden}, {len(self.vocab)} tokens)")


def read_base(init_from: str) -> BaseRun:
    """The finished run in ``init_from``, checked and loaded, nothing in it written; any
    mistake is a SettingError of ``init_from``."""
    folder = Path(init_from)
    try:
        with reading_run_folder(folder):
            run = load_run(folder, BEST, device="cpu")
            check_finished(folder, run.config)
            digest = file_sha256(folder / BEST)
    except SettingError:
        raise
    except RnnlmError as e:
        raise SettingError("init_from", f"{{init_from}} {literal(e)}") from None
    weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    return BaseRun(folder, run.name, run.config, run.vocab, run.tokenizer, weights, digest)


def check_finished(folder: Path, config: RunConfig) -> None:
    """Refuse a run whose training stopped before its end (its weights are not the ones its
    settings meant); a run folder without its training state (shared without it) counts as
    finished."""
    if not os.path.lexists(folder / STATE):
        return
    info = read_state_position(folder / STATE)
    where = stopped_before_end(config, info)
    if where is not None:
        raise SettingError("init_from", f"{{init_from}} {literal(folder)}: its training stopped before its end "
                                        f"({where}); finish it first ({{resume}} {literal(folder)})")


def stopped_before_end(config: RunConfig, info: dict[str, Any]) -> str | None:
    """Where a run's training stopped, in words, when that was before its end (None: it ended,
    its epochs or plan done, stopped early by its patience, or its budget spent)."""
    if info.get("stop_reason") == "patience":
        return None
    plan = config.plan
    if plan is None:
        epoch, total = info.get("epoch", 0), config.train.total_epochs
        return None if epoch >= total else f"after epoch {epoch} of its {total}"
    done, spent = info.get("plan_step", info.get("step", 0)), info.get("budget_spent") or 0.0
    if done >= plan.steps or not isinstance(spent, (int, float)) or plan.limit - spent <= plan.valid_s:
        return None
    return f"at step {done:,} of its plan's {plan.steps:,}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adopt_base(config: RunConfig, base: BaseRun) -> RunConfig:
    """``config`` (validated) as a run that starts from ``base``: the base's architecture and
    tokenizer, the user's training settings, and for those the user did not give the base's or
    the fine-tuning defaults. A given setting that contradicts the base is a SettingError."""
    given, ft = config.given_fields(), config.fine_tune
    check_contradictions(config, base, given)
    if is_prepared(config.data.source):
        raise SettingError("init_from", f"{literal(config.data.source)} was written by rnnlm prepare with a vocab of "
                                        "its own; a run that starts from {init_from} reads the text itself")
    b = base.config
    model = replace(b.model, **{n: getattr(config.model, n) for n in FROM_BASE if n in given and hasattr(b.model, n)})
    if "dropout" not in given:  # a small text overfits a large model within minutes
        model = replace(model, dropout=max(model.dropout, MIN_DROPOUT))
    train = {n: getattr(config.train, n) for n in FROM_BASE if hasattr(b.train, n)}
    train = {n: (v if n in given else getattr(b.train, n)) for n, v in train.items()}
    if "lr" not in given and not config.train.phases:
        train["lr"] = b.train.lr  # a third of it lost to training from scratch on German recipes
    data = replace(config.data, level=base.level, lower=base.tokenizer.lower,
                   vocab_size=b.data.vocab_size if base.level == "bpe" else None)
    record = replace(ft, init_from=os.path.abspath(ft.init_from), base_name=base.folder.resolve().name,
                     base_data=b.data.source,
                     base_vocab=len(base.vocab), base_weights=base.sha256, base_chain=base.chain)
    return replace(config, data=data, model=model, train=replace(config.train, **train), fine_tune=record)


def setting_text(name: str, value: Any) -> str:
    """A setting and its value as a message names them: ``{level} word``, ``{lower}``, ``{lower} off``."""
    if isinstance(value, bool):
        return f"{{{name}}}" if value else f"{{{name}}} off"
    return f"{{{name}}} {literal(value)}"


def trained_with(name: str, value: Any) -> str:
    """``with {level} char``, ``with {lower}``, ``without {lower}``."""
    if value is False:
        return f"without {{{name}}}"
    return f"with {setting_text(name, value)}"


def check_contradictions(config: RunConfig, base: BaseRun, given: frozenset[str]) -> None:
    """The model and tokenizer settings given must be the base's; the vocab settings apply only
    to the tokens ``extend_vocab`` adds, which a BPE base never needs."""
    where = literal(base.folder)
    mine = {**vars(config.model), "level": config.data.level, "lower": config.data.lower,
            "vocab_size": config.data.vocab_size}
    theirs = {**vars(base.config.model), "level": base.level, "lower": base.tokenizer.lower,
              "vocab_size": base.config.data.vocab_size}
    for name in ARCHITECTURE + TOKENIZER:
        if name in given and mine[name] != theirs[name]:
            raise SettingError(name, f"{setting_text(name, mine[name])} contradicts the base run {where} (trained "
                                     f"{trained_with(name, theirs[name])}): a run that starts from it keeps its "
                                     f"architecture and tokenizer; drop {{{name}}}")
    extend = config.fine_tune.extend_vocab
    if extend and base.level == "bpe":
        raise SettingError("extend_vocab", f"the base run {where} reads text as byte-level BPE: its merges are kept "
                                           "and every text is read without an unknown token; drop {extend_vocab}")
    for name in ("min_freq", "max_size"):
        if name in given and not extend:
            raise SettingError(name, f"{{{name}}} builds a vocab; a run that starts from {{init_from}} keeps the "
                                     "base's (with {extend_vocab} it says which new tokens are added)")
