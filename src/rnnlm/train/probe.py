"""The probe of a ``--budget`` run: the machine's speed for one model and batch, measured.

It trains a few batches of a throwaway copy of the model (after a warm-up) and scores a few
validation batches, on the clock of the budget; the plan (rnnlm.train.budget) is made from what
it measured.
"""

from __future__ import annotations

import math
import time

import torch

from rnnlm.config import RunConfig, duration_text
from rnnlm.data.batching import StreamBatches
from rnnlm.data.textdata import TextData
from rnnlm.distributed import Distributed
from rnnlm.errors import SettingError
from rnnlm.evaluation.streams import stream_batches_for_eval
from rnnlm.models import RecurrentLM
from rnnlm.train.budget import Clock, Speed
from rnnlm.train.learner import Learner

WARM_UP = 1  # batches run before the probe times one (the first builds the kernels)
PROBE_SHARE = 0.02  # of the budget, at most PROBE_SECONDS, for timing training batches
PROBE_SECONDS = 1.5
MAX_PROBE_BATCHES = 50


def probe_time(budget: float) -> float:
    """Seconds the probe times training batches for: a small share of the budget."""
    return min(PROBE_SECONDS, PROBE_SHARE * budget)


def probe_speed(config: RunConfig, data: TextData, device: torch.device, dist: Distributed, seconds: float,
                clock: Clock = time.monotonic, started: float | None = None) -> Speed:
    """Time training batches of a throwaway copy of ``config``'s model on ``data``, and a few
    validation batches. The random number generators are left as they were, so the run that
    follows is the one it would be without the probe. Under torchrun every process runs it
    (the batches train through DistributedDataParallel) and rank 0's timings count for all.
    ``started``: when the run began; a budget spent before the first batches are timed is
    refused at once."""
    t = config.train
    probe_began = clock()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model = RecurrentLM(len(data.vocab), config.model)
        batches = StreamBatches(data.train_ids, t.bs, t.bptt).shard(dist.rank, dist.world_size)
        learner = Learner(model, batches, None, device=device, lr=t.lr, wd=t.wd, clip=t.clip, ar=t.ar, tar=t.tar,
                          dist=dist, precision=t.precision)
        hidden = None

        def train_batch(k: int) -> torch.Tensor:
            nonlocal hidden
            x, y = (b.to(device) for b in batches.batch(k % len(batches)))
            loss, hidden = learner.train_step(x, y, hidden)
            return loss

        for k in range(WARM_UP):
            train_batch(k).item()
        start = clock()
        train_batch(WARM_UP).item()
        one = clock() - start
        budget = config.train.budget
        if started is not None and budget is not None and dist.from_main(float(clock() - started > budget)):
            spent = dist.from_main(clock() - started)
            raise SettingError("budget", f"{{budget}} {duration_text(budget)} is too short: reading the corpus and the "
                                         f"first batches of the probe took {spent:.1f} s already (a batch: {one:.2f} "
                                         f"s); give at least {duration_text(math.ceil(1.5 * (spent + 4 * one)))}")
        count = int(dist.from_main(min(MAX_PROBE_BATCHES, seconds // max(one, 1e-6))))
        if count:  # else the one batch took the probe's time already
            start = clock()
            torch.stack([train_batch(WARM_UP + 1 + k) for k in range(count)]).sum().item()  # waits for the device
            one = (clock() - start) / count
        per_batch = dist.from_main(one)
        tokens_per_batch = t.bs * t.bptt  # all ranks together
        valid_s = dist.from_main(time_validation(learner.model, data, t.bs, t.bptt, device, dist, clock))
    return Speed(tokens_per_batch / per_batch, valid_s, clock() - probe_began)


@torch.inference_mode()
def time_validation(model: torch.nn.Module, data: TextData, bs: int, bptt: int, device: torch.device,
                    dist: Distributed, clock: Clock, batches: int = 3) -> float:
    """Seconds one pass over this process's share of the validation split takes, from a few
    of its batches; the streams' warm-up counted as tokens read (a little less work: no head)."""
    valid = stream_batches_for_eval(data.valid_ids, bs, bptt).shard(dist.rank, dist.world_size)
    if len(valid) == 0 or valid.bs == 0:
        return 0.0
    model.eval()
    state, timed, took = None, 0, 0.0
    for k in range(min(batches + 1, len(valid))):
        x, _ = valid.batch(k)
        start = clock()
        logits, state = model(x.to(device), state)
        logits.sum().item()
        if k:  # the first builds the kernels of inference
            took, timed = took + clock() - start, timed + x.numel()
    if not timed:
        return took
    return took / timed * (valid.tokens + valid.warmup_tokens)
