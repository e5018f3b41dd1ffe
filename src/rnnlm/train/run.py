"""Train a model from settings into a run folder: the work behind ``rnnlm train``."""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlm.config import RunConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.data.corpus import is_builtin
from rnnlm.data.textdata import TextData, build_text_data
from rnnlm.device import resolve_device
from rnnlm.errors import RnnlmError
from rnnlm.models import RecurrentLM
from rnnlm.runfolder import BEST, LAST, METRICS, prepare_run_folder, save_weights, write_run_config
from rnnlm.train.callbacks import Callback, EpochTable, MetricsLog, ProgressBar
from rnnlm.train.learner import Learner
from rnnlm.train.metrics import stream_batches_for_eval


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_paths(config: RunConfig) -> RunConfig:
    """Absolute data paths, so the run folder still finds its data from another directory."""
    data = config.data
    source = data.source if is_builtin(data.source) else str(Path(data.source).resolve())
    valid = str(Path(data.valid).resolve()) if data.valid else None
    return replace(config, data=replace(data, source=source, valid=valid))


def check_sizes(data: TextData, bs: int, bptt: int) -> None:
    needed = bs * bptt + 1
    if len(data.train_ids) < needed:
        raise RnnlmError(
            f"training split has {len(data.train_ids)} tokens, fewer than one batch "
            f"(--bs {bs} x --bptt {bptt} + 1 = {needed}); use a longer corpus or smaller --bs/--bptt"
        )
    if len(data.valid_ids) < 2:
        raise RnnlmError(
            f"validation split has {len(data.valid_ids)} tokens; it needs at least 2 "
            "(raise --valid-frac or pass --valid FILE)"
        )


def default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


class SaveCheckpoints(Callback):
    """Writes ``last.safetensors`` every epoch and ``model.safetensors`` when valid loss improves."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.best = math.inf
        self.saved = False

    def on_epoch_end(self, learner: Learner, row: dict[str, Any]) -> None:
        save_weights(self.folder / LAST, learner.model)
        loss = row["valid_loss"]
        if not self.saved or (math.isfinite(loss) and loss < self.best):
            self.best = loss if math.isfinite(loss) else self.best
            save_weights(self.folder / BEST, learner.model)
        self.saved = True


def train(
    config: RunConfig,
    out: str | os.PathLike | None = None,
    *,
    callbacks: list[Callback] | None = None,
    progress: bool | None = None,
    log=None,
) -> tuple[Path, Learner, TextData]:
    """Read the data, build the model, train it, and write the run folder. Returns its path."""
    config.validate()
    config = resolve_paths(config)
    device = resolve_device(config.train.device)
    seed_everything(config.train.seed)
    data = build_text_data(config.data)
    settings = replace(config.data, level=data.tokenizer.level, lower=data.tokenizer.lower)
    config = replace(config, data=settings)
    t = config.train
    check_sizes(data, t.bs, t.bptt)
    folder = prepare_run_folder(out or default_out(data.name))
    model = RecurrentLM(len(data.vocab), config.model)
    saver = SaveCheckpoints(folder)
    learner = Learner(
        model,
        StreamBatches(data.train_ids, t.bs, t.bptt),
        stream_batches_for_eval(data.valid_ids, t.bs, t.bptt),
        device=device, lr=t.lr, wd=t.wd, clip=t.clip,
        callbacks=[ProgressBar(progress), EpochTable(log), MetricsLog(folder / METRICS), saver,
                   *(callbacks or [])],
    )
    try:
        write_run_config(folder, config, data.vocab, data.name)
        learner.fit(t.epochs, t.lr, t.schedule, t.cycle_len, t.cycle_mult, t.max_minutes)
    except BaseException:
        if not saver.saved:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, learner, data
