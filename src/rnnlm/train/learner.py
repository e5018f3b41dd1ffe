"""Learner: the fit loop of a stateful language model.

The hidden state is carried from one batch to the next within an epoch and detached after every
batch (truncated back-propagation through time); it restarts from zeros at each epoch, since the
streams start over.

Training runs in phases (rnnlm.train.schedules.Phase): each call of ``fit`` starts one, a fresh
learning-rate schedule on the same optimiser, as the lessons train 4 epochs at 1e-3 and then 4
at 1e-4; epochs are numbered across phases.

A phase trains in rounds, each ending with a validation and a row of ``history``: a round is an
epoch, unless the run is planned (``--budget``, rnnlm.train.budget): then phases last a number
of optimiser steps, the model is validated after the steps in ``valid_at`` (mid-epoch or after
several epochs), and a ``pacer`` (rnnlm.train.pacing) keeps training to the time: where the
loop syncs it asks the pacer how far the schedule must skip ahead, and after each step whether
the step moves the schedule on; so that it ends, annealed, when the time is up. ``position``
(rnnlm.train.position) says where training stands.

``rnnlm.train.state`` captures everything needed to go on exactly where training stands, and
``rnnlm.train.checkpoint`` writes it to disk.

Under torchrun (``dist``) each rank trains its own block of the streams through
DistributedDataParallel; the train and valid losses are averaged over the ranks, and the ranks
agree on when to stop (rnnlm.distributed.agree_stop).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
import torch.nn.functional as F

from rnnlm.data.batching import StreamBatches
from rnnlm.distributed import Distributed, agree_stop
from rnnlm.errors import SettingError
from rnnlm.evaluation.streams import TextSize, evaluate_stream
from rnnlm.models import detach_state
from rnnlm.models.recurrent import fp32_state
from rnnlm.train.callbacks import Callback
from rnnlm.train.position import Position
from rnnlm.train.schedules import Phase

if TYPE_CHECKING:
    from rnnlm.train.pacing import Pacer


class TrainingDiverged(SettingError):
    """The loss or a weight stopped being finite: the rate (``lr``) is the first setting to look at."""

    def __init__(self, message: str):
        super().__init__("lr", message)


def position_view(name: str) -> property:
    """A read-only view of the learner's ``position.<name>``."""
    return property(lambda learner: getattr(learner.position, name), doc=f"``position.{name}``")


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
        ar: float = 0.0,
        tar: float = 0.0,
        callbacks: Sequence[Callback] = (),
        log_every: int = 20,
        dist: Distributed | None = None,
        valid_text: TextSize | None = None,
        valid_at: Sequence[int] | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
        groups: list[dict] | None = None,
        freeze_until: int = 0,
        precision: str = "fp32",
    ):
        """``valid_at``: the plan steps after which a planned run validates (None: at each epoch's
        end); ``pacer`` keeps it to its time; ``clock``: what a deadline is measured on.
        ``groups``: the optimiser's parameter groups (None: one), each with an ``lr_scale``; until
        plan step ``freeze_until`` only the first group trains (rnnlm.train.layers).
        ``precision``: bf16 runs the training steps' forward pass under bfloat16 autocast."""
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.dist = dist or Distributed(device=self.device)
        self.net = self.dist.wrap(self.model)  # what trains: the model, or DistributedDataParallel around it
        self.train_data, self.valid_data = train, valid
        self.valid_text = valid_text  # the whole validation split (all ranks), for bits per character
        self.optimizer = torch.optim.AdamW(groups or model.parameters(), lr=lr, weight_decay=wd)
        self.freeze_until = freeze_until
        self.clip = clip
        self.ar, self.tar = ar, tar
        self.callbacks = list(callbacks)
        self.log_every = log_every
        self.valid_at = list(valid_at) if valid_at is not None else None
        self.pacer = pacer
        self.clock = clock
        self.bf16 = precision == "bf16"
        self.phase: Phase | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.position = Position()
        self.lr = lr  # the rate of the latest step
        self.hidden = None  # the state carried to the next batch
        self.loss_sum = torch.zeros((), device=self.device)  # train loss summed over this round
        self.unchecked: list[torch.Tensor] = []  # losses not yet checked to be finite
        self.history: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.interrupted = False  # under torchrun: Ctrl-C came, to act on where the ranks agree
        self.deadline = math.inf

    # Where training stands, as callbacks read it (``position`` holds it all).
    epoch = position_view("epoch")
    batch = position_view("batch")
    step = position_view("step")
    tokens_seen = position_view("tokens_seen")
    plan_step = position_view("plan_step")

    @property
    def batches_per_epoch(self) -> int:
        return len(self.train_data)

    @property
    def streams(self) -> int:
        """The streams of a training batch, all ranks together."""
        return self.train_data.bs * self.dist.world_size

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def request_stop(self, reason: str) -> None:
        """Stop once this round ends (early stopping calls this from ``on_epoch_end``)."""
        self.stop_reason = reason

    def interrupt(self) -> None:
        """Stop after the batch under way, mid-round, keeping the position for a resume. Under
        torchrun the ranks stop together at the next batch where they sync."""
        if self.dist.active:
            self.interrupted = True
        else:
            self.stop_reason = "interrupt"

    def fit(self, epochs: int, lr: float, schedule: str = "constant", cycle_len: int = 1, cycle_mult: int = 2,
            max_minutes: float | None = None) -> list[dict[str, Any]]:
        """Train ``epochs`` more epochs as a new phase; returns their rows (also in ``history``)."""
        self.start_phase(Phase(epochs, lr, schedule, cycle_len, cycle_mult))
        return self.continue_phase(max_minutes)

    def start_phase(self, phase: Phase) -> None:
        """Begin ``phase`` where training stands, with a fresh schedule on the same optimiser; a
        phase of epochs begins at the start of an epoch."""
        at = self.position
        self.phase = replace(phase, start_epoch=at.epoch, start_step=at.plan_step)
        self.scheduler = self.phase.scheduler(self.optimizer, self.batches_per_epoch)
        if not phase.planned:
            at.batch = 0

    def continue_phase(self, max_minutes: float | None = None) -> list[dict[str, Any]]:
        """Train the current phase to its end, from where it stands (after a resume, mid-phase),
        or until something stops training; returns the rows of its rounds."""
        if self.phase is None:
            raise ValueError("no phase to continue: call fit first")
        if self.pacer is not None:
            self.deadline = self.pacer.hard_deadline
        else:
            self.deadline = self.clock() + 60 * max_minutes if max_minutes is not None else math.inf
        self.stop_reason = None
        rows = []
        self._call("on_train_begin")
        while not self.phase_done() and self.stop_reason is None:
            row = self.train_round()
            if row is not None:
                rows.append(row)
        self._call("on_train_end")
        return rows

    def phase_done(self) -> bool:
        return self.phase.done_at(self.position)

    def skip_ahead(self, steps: int) -> int:
        """Move the schedule ``steps`` steps on without training them (not past the phase's end),
        so that a planned run that fell behind its time still ends at the end of its schedule;
        returns the steps skipped."""
        at = self.position
        steps = max(0, min(steps, self.phase.end_step - at.plan_step)) if self.phase.planned else 0
        for _ in range(steps):
            self.scheduler.step()
        at.plan_step += steps
        return steps

    def loss(self, x: torch.Tensor, y: torch.Tensor, hidden) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """The objective (cross-entropy plus AR/TAR), the cross-entropy alone, and the new state;
        ``x`` and ``y`` are (N, T) token ids."""
        regularise = self.ar > 0 or self.tar > 0
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x, hidden, activations=True) if regularise else self.net(x, hidden)
        logits = out[0].float()  # (N, T, V)
        cross_entropy = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        objective = cross_entropy
        if regularise:
            raw, dropped = (a.float() for a in out[2])  # the last layer's output (N, T, H), before and after dropout
            objective = objective + self.ar * dropped.pow(2).mean()
            objective = objective + self.tar * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        return objective, cross_entropy, fp32_state(out[1])

    def train_step(self, x: torch.Tensor, y: torch.Tensor, hidden) -> tuple[torch.Tensor, Any]:
        """One optimiser step on one batch from state ``hidden``; returns the cross-entropy and
        the detached new state."""
        objective, cross_entropy, hidden = self.loss(x, y, hidden)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if self.frozen:
            for group in self.optimizer.param_groups[1:]:
                for p in group["params"]:
                    p.grad = None  # AdamW leaves a parameter without a gradient as it is, moments and all
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return cross_entropy.detach(), detach_state(hidden)

    @property
    def frozen(self) -> bool:
        """Whether only the first parameter group trains now (a fine-tuned run's first steps)."""
        return self.position.plan_step < self.freeze_until

    def check_loss(self) -> float:
        """Wait for the device; the running train loss of this round (the mean over the ranks
        under torchrun, where every rank calls this at the same batches). Raises
        TrainingDiverged, naming the first batch whose loss was not finite."""
        if self.unchecked:
            losses = torch.stack(self.unchecked)
            if self.dist.active:
                losses = self.dist.sum(losses) / self.dist.world_size
            self.unchecked = []
            for loss in losses:  # one by one, as the batches came: the same sum however often this runs
                self.loss_sum += loss
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                first = int(bad[0])
                batch = self.position.batch - len(losses) + first + 1
                raise TrainingDiverged(
                    f"loss became {losses[first].item()} at epoch {self.position.epoch + 1}, batch {batch}"
                )
        return self.loss_sum.item() / max(self.position.round_batches, 1)

    def check_weights(self) -> None:
        """Raises TrainingDiverged when any weight is no longer finite (never save those)."""
        self.check_loss()
        for name, p in self.model.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingDiverged(f"weight {name} became non-finite at epoch {self.position.epoch + 1}, "
                                       f"batch {self.position.batch}")

    def _check_stop(self) -> None:
        """After a batch: stop once past the deadline, or on Ctrl-C (which in one process sets
        ``stop_reason`` itself)."""
        time_up = "time" if self.clock() > self.deadline else None
        if self.dist.active:
            self.stop_reason = self._agree_stop(time_up) or self.stop_reason
        elif time_up and self.stop_reason != "interrupt":
            self.stop_reason = time_up

    def _agree_stop(self, reason: str | None) -> str | None:
        """Under torchrun, the reason the ranks stop for (a Ctrl-C that came is used up here)."""
        agreed = agree_stop(self.dist, reason, self.interrupted)
        self.interrupted = False
        return agreed

    def _row_due(self) -> bool:
        """Whether the round ends after the batch just done: at the epoch's end, or in a planned
        run at the next step of ``valid_at`` (or past it, after a skip) and at the phase's end."""
        at = self.position
        if self.valid_at is None:
            return at.batch == self.batches_per_epoch
        due = next((step for step in self.valid_at if step > at.row_step), math.inf)
        return at.plan_step >= due or self.phase_done()

    def train_round(self) -> dict[str, Any] | None:
        """Train to the end of the round under way (see the module's docstring), validate, and
        return its row; None when interrupted mid-round."""
        start = time.monotonic()
        if self.position.round_batches == 0:
            self.loss_sum = torch.zeros((), device=self.device)
            self.position.round_seconds = 0.0
        self._call("on_epoch_begin")
        self.net.train()
        while True:
            self._train_batch()
            row_due = self._after_batch()
            if self.stop_reason == "interrupt" and not row_due:  # mid-round: the position is kept for a resume
                self.position.round_seconds += time.monotonic() - start
                return None
            if row_due or self.stop_reason == "time":
                return self._end_round(start)

    def _train_batch(self) -> None:
        """One optimiser step on the next batch of the epoch; the schedule moves on with it
        unless the pacer holds it."""
        at = self.position
        if at.batch == 0:
            self.hidden = None  # the streams start over
        x, y = (t.to(self.device) for t in self.train_data.batch(at.batch))  # (N, T) each
        self.lr = self.optimizer.param_groups[0]["lr"]
        loss, self.hidden = self.train_step(x, y, self.hidden)
        if self.pacer is None or self.pacer.after_step():
            self.scheduler.step()
            at.plan_step += 1
        self.unchecked.append(loss)
        at.batch += 1
        at.step += 1
        at.round_batches += 1
        at.tokens_seen += y.numel() * self.dist.world_size

    def _after_batch(self) -> bool:
        """Sync where due, tell the callbacks, look for a reason to stop and ask the pacer how
        far to skip; whether the round's row is due."""
        at, n = self.position, self.batches_per_epoch
        synced = at.batch % self.log_every == 0 or at.batch == n or self._row_due()
        self._call("on_batch_end", self.check_loss() if synced else None)
        if synced or not self.dist.active:  # the ranks agree where they sync anyway
            self._check_stop()
        if synced and self.pacer is not None:  # every rank asks: rank 0 decides for all
            skip = self.pacer.pace(at).skip
            if self.stop_reason is None:
                self.skip_ahead(skip)
        row_due = self._row_due()
        if self.valid_at is not None and at.batch == n:  # a planned round goes on into the next epoch
            at.epoch += 1
            at.batch = 0
        return row_due

    def _end_round(self, start: float) -> dict[str, Any]:
        """Validate, write the round's row, and tell the callbacks (which may ask to stop)."""
        at = self.position
        train_loss = self.check_loss()
        planned = self.valid_at is not None
        if not planned:
            at.epoch += 1
            at.batch = 0
            self.hidden = None
        validation_start = time.monotonic()
        row = self._row(train_loss, start)
        self.history.append(row)
        at.row_step, at.round_batches = at.plan_step, 0
        self._call("on_epoch_end", row)
        if self.pacer is not None:
            self.pacer.validated(time.monotonic() - validation_start)
        if self.dist.active:  # rank 0 alone runs the callbacks, which may ask to stop
            self.stop_reason = self._agree_stop(self.stop_reason)
        return row

    def _row(self, train_loss: float, start: float) -> dict[str, Any]:
        """The round's row of history: its losses, the validation's scores, where training stands;
        ``time``: seconds of the round, before a resume and since ``start``."""
        at = self.position
        scores = (evaluate_stream(self.model, self.valid_data, self.device, self.dist, self.valid_text)
                  if self.valid_data is not None else None)  # every rank, its block empty or not: the sums meet
        valid_loss = scores.loss if scores else math.nan
        planned = self.valid_at is not None
        return {
            "epoch": round(at.epoch + at.batch / self.batches_per_epoch, 3) if planned else at.epoch,
            "train_loss": train_loss,
            "valid_loss": valid_loss,  # nats per token
            "accuracy": scores.accuracy if scores else math.nan,
            "bits_per_token": valid_loss / math.log(2),
            "bpc": scores.bits_per_char if scores else math.nan,  # bits per character of the validation text
            "perplexity": scores.perplexity if scores else math.nan,
            "lr": self.lr,
            "step": at.step,
            "tokens": at.tokens_seen,
            "time": at.round_seconds + time.monotonic() - start,
        }

    def callback_states(self) -> dict[str, Callback]:
        """The callbacks by the key their state is saved under."""
        return {f"{i}.{type(cb).__name__}": cb for i, cb in enumerate(self.callbacks)}
