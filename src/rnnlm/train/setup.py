"""What a run starts from: its settings resolved, the random number generators seeded, and the
corpus read and checked (and fingerprinted, so that a resume knows it is the same)."""

from __future__ import annotations

import hashlib
import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlm.config import BPE_DEFAULT_VOCAB, RunConfig
from rnnlm.data.corpus import is_builtin
from rnnlm.data.prepare import is_prepared
from rnnlm.data.textdata import TextData, build_text_data
from rnnlm.data.tokenizers import Tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.device import resolve_precision
from rnnlm.errors import SettingError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_config(config: RunConfig) -> RunConfig:
    """Validated, with absolute data paths (the run folder still finds its data from another
    directory), the schedule and epochs that phases imply, the BPE vocab size and the precision
    written out."""
    config.validate()
    data, t = config.data, config.train
    source = data.source if is_builtin(data.source) else os.path.abspath(data.source)
    valid = os.path.abspath(data.valid) if data.valid else None
    vocab_size = data.vocab_size
    if data.level == "bpe" and vocab_size is None and not is_prepared(data.source):  # a prepared folder has its own
        vocab_size = BPE_DEFAULT_VOCAB
    phases = [list(p) for p in t.plan()] if t.phases else None
    t = replace(t, phases=phases, lr=t.plan()[0][0], epochs=t.total_epochs, schedule=t.schedule_name,
                precision=resolve_precision(t.precision or ("auto" if t.budget else "fp32"), t.device))
    return replace(config, data=replace(data, source=source, valid=valid, vocab_size=vocab_size), train=t)


def check_sizes(data: TextData, bs: int, bptt: int) -> None:
    needed = bs * bptt + 1
    if len(data.train_ids) < needed:
        raise SettingError("bs", f"training split has {len(data.train_ids)} tokens, fewer than one batch "
                                 f"({{bs}} {bs} x {{bptt}} {bptt} + 1 = {needed}); use a longer corpus or smaller "
                                 "{bs}/{bptt}")
    if len(data.valid_ids) < 2:
        raise SettingError("valid_frac", f"validation split has {len(data.valid_ids)} tokens; it needs at least 2 "
                                         "(raise {valid_frac} or pass {valid} FILE)")


def load_data(config: RunConfig, vocab: Vocab | None = None, tokenizer: Tokenizer | None = None,
              check: bool = True) -> tuple[RunConfig, TextData]:
    """Read and encode the corpus (with the run's own tokenizer and vocab, when given); the config
    comes back with the level, lower-casing and documents it found (a prepared folder fixes them),
    and for a list the number of documents held out."""
    data = build_text_data(config.data, vocab, tokenizer)
    config = settings_of_data(config, data)
    if check:
        check_sizes(data, config.train.bs, config.train.bptt)
    return config, data


def settings_of_data(config: RunConfig, data: TextData) -> RunConfig:
    """``config`` with the level, lower-casing and documents its data was read with, and for a
    list the number of documents held out."""
    settings = replace(config.data, level=data.tokenizer.level, lower=data.tokenizer.lower, lines=data.lines,
                       doc_sep=data.doc_sep)
    if data.items is not None and settings.valid is None and not is_prepared(settings.source):
        settings = replace(settings, valid_docs=len(data.items.valid))  # a list's split, recorded: its size here,
        # its items in the run folder (documents.safetensors)
    return replace(config, data=settings)


def fingerprint(data: TextData) -> dict[str, Any]:
    """What a resume checks: the token ids it trains and validates on are the ones it began with."""
    digest = hashlib.sha256()
    for ids in (data.train_ids, data.valid_ids):
        digest.update(str(ids.dtype).encode())
        for start in range(0, len(ids), 1 << 24):  # memory maps are read a piece at a time
            digest.update(np.ascontiguousarray(ids[start : start + (1 << 24)]).tobytes())
    return {"train_tokens": len(data.train_ids), "valid_tokens": len(data.valid_ids), "sha256": digest.hexdigest()}


def default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
