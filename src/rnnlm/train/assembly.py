"""A run's learner and callbacks, built from its settings, its data and the session."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rnnlm.config import RunConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.data.textdata import TextData
from rnnlm.distributed import Distributed
from rnnlm.evaluation.streams import stream_batches_for_eval, text_size
from rnnlm.models import RecurrentLM
from rnnlm.runfolder import BEST, LAST, METRICS, PLOT, STATE, Run
from rnnlm.train.callbacks import (
    Callback,
    EarlyStopping,
    EpochTable,
    LossPlot,
    MetricsLog,
    ProgressBar,
    SaveCheckpoints,
    SaveCycleEnds,
)
from rnnlm.train.checkpoint import SaveTrainingState
from rnnlm.train.layers import fine_tune_groups, grown_weights
from rnnlm.train.learner import Learner
from rnnlm.train.memory import check_training_memory
from rnnlm.train.pacing import Pacer
from rnnlm.train.tensorboard import TensorBoardLog, run_sampler
from rnnlm.train.plots import has_matplotlib
from rnnlm.train.session import Session
from rnnlm.train.setup import fingerprint


def make_learner(
    config: RunConfig, data: TextData, device: torch.device, callbacks: list[Callback] = (),
    dist: Distributed | None = None, pacer: Pacer | None = None, weights: dict[str, torch.Tensor] | None = None,
) -> Learner:
    """A learner on the data; under torchrun (``dist``) on this rank's block of the streams; a
    planned run (``config.plan``) validates where its plan says, kept to its time by ``pacer``.
    A fine-tuned run's model starts from its base's ``weights`` (grown to a larger vocab), its
    layers in groups (rnnlm.train.layers)."""
    t = config.train
    dist = dist or Distributed(device=device)
    check_training_memory(config, len(data.vocab), device)
    model = RecurrentLM(len(data.vocab), config.model)
    if weights is not None:
        model.load_state_dict(grown_weights(weights, len(data.vocab)))
    if dist.rank:  # its own dropout masks (the weights are rank 0's: DistributedDataParallel sends them)
        torch.manual_seed(t.seed + dist.rank)
    batches = StreamBatches(data.train_ids, t.bs, t.bptt)
    sample = config.plan.valid_tokens if config.plan is not None else None  # a long split: a sample spread over it
    valid = stream_batches_for_eval(data.valid_ids, t.bs, t.bptt, tokens=sample)
    log_every = max(1, min(20, len(batches) // 10))  # at least ten loss points an epoch
    valid_at = config.plan.valid_at if config.plan is not None else None
    if valid_at is not None:
        log_every = max(1, min(log_every, valid_at[0]))
    steps = config.plan.steps if config.plan is not None else t.total_epochs * len(batches)
    groups, freeze_until = fine_tune_groups(model, config, steps)
    return Learner(
        model,
        batches.shard(dist.rank, dist.world_size),
        valid.shard(dist.rank, dist.world_size),
        device=device, lr=t.plan()[0][0], wd=t.wd, clip=t.clip, ar=t.ar, tar=t.tar, callbacks=callbacks,
        log_every=log_every, dist=dist, valid_text=text_size(data.valid_ids, data.valid_characters),
        valid_at=valid_at, pacer=pacer, clock=pacer.clock if pacer is not None else time.monotonic,
        groups=groups, freeze_until=freeze_until, precision=t.precision,
    )


def run_callbacks(config: RunConfig, folder: Path, data: TextData, save_every: int | None, session: Session,
                  dist: Distributed) -> tuple[list[Callback], SaveCheckpoints, SaveTrainingState]:
    """The built-in callbacks of a run folder, the session's, and last the state saver (saving
    every ``save_every`` batches too). Under torchrun they run on rank 0; the other ranks run
    the state saver alone (its state gathers their share)."""
    t = config.train
    weights = SaveCheckpoints(folder / BEST, folder / LAST)
    state = SaveTrainingState(folder / STATE, save_every, extra=fingerprint(data) if dist.is_main else None)
    if not dist.is_main:
        return [state], weights, state
    chosen: list[Callback] = [ProgressBar(session.progress), EpochTable(session.log), MetricsLog(folder / METRICS),
                              weights]
    if t.schedule_name == "sgdr":
        chosen.append(SaveCycleEnds(folder))
    if t.patience:
        chosen.append(EarlyStopping(t.patience))
    if has_matplotlib():
        chosen.append(LossPlot(folder / PLOT, title=plot_title(folder, config, data)))
    events: list[Callback] = []  # last but the state saver: the others' states keep their keys
    if session.tensorboard is not None:
        run = Run(folder, folder.name, config, data.vocab, data.tokenizer, None, dist.device)
        events.append(TensorBoardLog(session.tensorboard, run_sampler(run, t.seed)))
    return [*chosen, *session.callbacks, *events, state], weights, state


def plot_title(folder: Path, config: RunConfig, data: TextData) -> str:
    m = config.model
    model = f"{m.layers}-layer {m.cell.upper()} {m.hidden}"
    return f"{folder.name}: {model} on {data.name} ({data.tokenizer.level} level)"
