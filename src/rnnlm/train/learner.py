"""Learner: the fit loop of a stateful language model.

The hidden state is carried from one batch to the next within an epoch and detached after every
batch (truncated back-propagation through time); it restarts from zeros at each epoch, since the
streams start over. Calling ``fit`` again continues with the same optimiser, as the lessons do
when they train 4 epochs at 1e-3 and then 4 at 1e-4.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from rnnlm.data.batching import StreamBatches
from rnnlm.errors import RnnlmError
from rnnlm.models import detach_state
from rnnlm.train.callbacks import Callback
from rnnlm.train.metrics import evaluate_stream
from rnnlm.train.schedules import make_scheduler


class TrainingDiverged(RnnlmError):
    pass


class Learner:
    def __init__(
        self,
        model: torch.nn.Module,
        train: StreamBatches,
        valid: StreamBatches | None,
        *,
        device: torch.device | str = "cpu",
        lr: float = 1e-3,
        wd: float = 0.0,
        clip: float | None = None,
        callbacks: Sequence[Callback] = (),
        log_every: int = 20,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.train_data, self.valid_data = train, valid
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
        self.clip = clip
        self.callbacks = list(callbacks)
        self.log_every = log_every
        self.epoch = 0  # epochs completed so far, across calls to fit
        self.step = 0  # optimiser steps so far
        self.tokens_seen = 0
        self.history: list[dict[str, Any]] = []
        self.stop_requested = False

    @property
    def batches_per_epoch(self) -> int:
        return len(self.train_data)

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def fit(
        self,
        epochs: int,
        lr: float,
        schedule: str = "constant",
        cycle_len: int = 1,
        cycle_mult: int = 2,
        max_minutes: float | None = None,
    ) -> list[dict[str, Any]]:
        """Train ``epochs`` more epochs; returns their rows (also appended to ``history``)."""
        scheduler = make_scheduler(
            self.optimizer, schedule, lr, epochs * self.batches_per_epoch,
            self.batches_per_epoch, cycle_len, cycle_mult,
        )
        deadline = time.monotonic() + 60 * max_minutes if max_minutes else math.inf
        self.stop_requested = False
        rows = []
        self._call("on_train_begin")
        for _ in range(epochs):
            rows.append(self._fit_epoch(scheduler, deadline))
            if self.stop_requested:
                break
        self._call("on_train_end")
        return rows

    def _fit_epoch(self, scheduler, deadline: float) -> dict[str, Any]:
        start = time.monotonic()
        self._call("on_epoch_begin")
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        batches = 0
        state = None
        for x, y in self.train_data:
            x, y = x.to(self.device), y.to(self.device)
            logits, state = self.model(x, state)
            state = detach_state(state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()
            batches += 1
            self.step += 1
            self.tokens_seen += y.numel()
            running = None
            if batches % self.log_every == 0 or batches == self.batches_per_epoch:
                running = loss_sum.item() / batches
                if not math.isfinite(running):
                    raise TrainingDiverged(
                        f"loss became {running} in epoch {self.epoch + 1}, batch {batches}; "
                        "try a lower --lr or gradient clipping (--clip)"
                    )
            self._call("on_batch_end", running)
            if time.monotonic() > deadline:
                self.stop_requested = True
                break
        self.epoch += 1
        scores = evaluate_stream(self.model, self.valid_data, self.device) if self.valid_data else None
        valid_loss = scores.loss if scores else math.nan
        row = {
            "epoch": self.epoch,
            "train_loss": loss_sum.item() / max(batches, 1),
            "valid_loss": valid_loss,
            "accuracy": scores.accuracy if scores else math.nan,
            "bpc": valid_loss / math.log(2),
            "perplexity": scores.perplexity if scores else math.nan,
            "lr": self.optimizer.param_groups[0]["lr"],
            "step": self.step,
            "tokens": self.tokens_seen,
            "time": time.monotonic() - start,
        }
        self.history.append(row)
        self._call("on_epoch_end", row)
        return row
