"""Learner: the fit loop of a stateful language model.

The hidden state is carried from one batch to the next within an epoch and detached after every
batch (truncated back-propagation through time); it restarts from zeros at each epoch, since the
streams start over.

Training runs in phases: each call of ``fit`` starts one, a fresh learning-rate schedule on the
same optimiser, as the lessons train 4 epochs at 1e-3 and then 4 at 1e-4; epochs are numbered
across phases.

Training goes in rounds, each ending with a validation and a row of ``history``: a round is an
epoch, unless the run is planned (``--budget``, rnnlm.train.budget): then phases last a number
of optimiser steps, the model is validated after the steps in ``valid_at`` (mid-epoch or after
several epochs), and a ``pacer`` keeps training to the time: when it falls behind, the schedule
skips ahead (``skip_ahead``); when it runs ahead, some steps leave the schedule where it is
(``hold_rate``); so that it ends, annealed, when the time is up.

``training_state`` captures everything needed to go on exactly where training stands (weights,
optimiser, scheduler, RNG states, the position inside the epoch, the carried hidden state, the
callbacks' own state) as tensors plus plain JSON data; ``load_training_state`` puts it back.
``rnnlm.train.checkpoint`` writes it to disk.

Under torchrun (``dist``) each rank trains its own block of the streams through
DistributedDataParallel; the train and valid losses are averaged over the ranks, and the ranks
agree on when to stop (see ``_agree_stop``). The training state holds the hidden state of all
the streams and the random number generator state of every rank, so it is the same whichever
rank asks for it, and a resume with as many processes continues exactly.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.data.batching import StreamBatches
from rnnlm.errors import RnnlmError
from rnnlm.evaluation.streams import TextSize, evaluate_stream
from rnnlm.models import detach_state
from rnnlm.train.callbacks import Callback
from rnnlm.train.distributed import Distributed
from rnnlm.train.schedules import Phase


class TrainingDiverged(RnnlmError):
    pass


# Why training stops. Where the ranks under torchrun differ, the reason later in this list wins;
# one a callback gives that is not here outranks them all, and the other ranks know it as "requested".
STOP_REASONS = (None, "time", "interrupt", "patience")


def stop_rank(reason: str | None) -> int:
    return STOP_REASONS.index(reason) if reason in STOP_REASONS else len(STOP_REASONS)


def state_parts(state) -> tuple[torch.Tensor, ...]:
    """The tensors of a recurrent state: none before the first batch, (h,) or (h, c)."""
    if state is None:
        return ()
    return state if isinstance(state, tuple) else (state,)


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
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.dist = dist or Distributed(device=self.device)
        self.net = self.dist.wrap(self.model)  # what trains: the model, or DistributedDataParallel around it
        self.train_data, self.valid_data = train, valid
        self.valid_text = valid_text  # the whole validation split (all ranks), for bits per character
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        self.clip = clip
        self.ar, self.tar = ar, tar
        self.callbacks = list(callbacks)
        self.log_every = log_every
        self.phase: Phase | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.epoch = 0  # epochs completed so far, across phases
        self.batch = 0  # batches done in the epoch under way
        self.step = 0  # optimiser steps so far
        self.tokens_seen = 0
        self.lr = lr  # the rate of the latest step
        self.hidden = None  # the state carried to the next batch
        self.loss_sum = torch.zeros((), device=self.device)  # train loss summed over this epoch
        self.epoch_seconds = 0.0  # time spent on this epoch before a resume
        self.history: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.interrupted = False  # under torchrun: Ctrl-C came, to act on where the ranks agree
        self.deadline = math.inf
        self.clock = time.monotonic  # what the deadline is measured on
        # planned runs (--budget): see the module's docstring
        self.valid_at: list[int] | None = None  # None: validate at each epoch end
        self.pacer = None  # rnnlm.train.budget.Pacer
        self.plan_step = 0  # steps of the planned schedule done (optimiser steps less those held, plus those skipped)
        self.hold_rate = 0.0  # share of the coming steps that leave the schedule where it is (Pacer.pace)
        self.hold_credit = 0.0
        self.held = 0  # steps trained while the schedule waited
        self.row_step = 0  # plan_step at the latest row
        self.round_batches = 0  # batches of the round under way
        self._unchecked: list[torch.Tensor] = []  # losses not yet checked to be finite

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
        """Stop once this epoch ends (early stopping calls this from ``on_epoch_end``)."""
        self.stop_reason = reason

    def interrupt(self) -> None:
        """Stop after the batch under way, mid-epoch, keeping the position for a resume. Under
        torchrun the ranks stop together at the next batch where they sync (``_agree_stop``)."""
        if self.dist.active:
            self.interrupted = True
        else:
            self.stop_reason = "interrupt"

    def fit(
        self,
        epochs: int,
        lr: float,
        schedule: str = "constant",
        cycle_len: int = 1,
        cycle_mult: int = 2,
        max_minutes: float | None = None,
        steps: int | None = None,
        cycle_steps: int | None = None,
    ) -> list[dict[str, Any]]:
        """Train ``epochs`` more epochs as a new phase, or (planned runs) ``steps`` optimiser steps
        from where training stands; returns their rows (also in ``history``)."""
        self.phase = Phase(epochs, lr, schedule, cycle_len, cycle_mult, start_epoch=self.epoch, planned_steps=steps,
                           start_step=self.plan_step, cycle_steps=cycle_steps)
        self.scheduler = self._make_scheduler(self.phase)
        if steps is None:
            self.batch = 0
        return self.fit_phase(max_minutes)

    def fit_phase(self, max_minutes: float | None = None) -> list[dict[str, Any]]:
        """Run the current phase to its end, from where it stands (after a resume, mid-phase)."""
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
            row = self._fit_epoch()
            if row is not None:
                rows.append(row)
        self._call("on_train_end")
        return rows

    def phase_done(self) -> bool:
        phase = self.phase
        return self.plan_step >= phase.end_step if phase.planned else self.epoch >= phase.end_epoch

    def _make_scheduler(self, phase: Phase) -> torch.optim.lr_scheduler.LRScheduler:
        return phase.scheduler(self.optimizer, self.batches_per_epoch)

    def skip_ahead(self, steps: int) -> int:
        """Move the schedule ``steps`` steps on without training them (not past the phase's end),
        so that a planned run that fell behind its time still ends at the end of its schedule;
        returns the steps skipped."""
        steps = max(0, min(steps, self.phase.end_step - self.plan_step)) if self.phase.planned else 0
        for _ in range(steps):
            self.scheduler.step()
        self.plan_step += steps
        return steps

    def holds_schedule(self) -> bool:
        """Whether the step just trained leaves the schedule where it is: ``hold_rate`` of the
        steps do, evenly spread, so a planned run on a machine faster than its probe stretches
        its schedule over the time it has (the rate of the moment, for a step)."""
        self.hold_credit += self.hold_rate
        if self.hold_credit < 1:
            return False
        self.hold_credit -= 1
        return True

    def loss(self, x: torch.Tensor, y: torch.Tensor, hidden) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """The objective (cross-entropy plus AR/TAR), the cross-entropy alone, and the new state."""
        regularise = self.ar > 0 or self.tar > 0
        out = self.net(x, hidden, activations=True) if regularise else self.net(x, hidden)
        logits = out[0]
        cross_entropy = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        objective = cross_entropy
        if regularise:
            raw, dropped = out[2]
            objective = objective + self.ar * dropped.pow(2).mean()
            objective = objective + self.tar * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        return objective, cross_entropy, out[1]

    def train_step(self, x: torch.Tensor, y: torch.Tensor, hidden) -> tuple[torch.Tensor, Any]:
        """One optimiser step on one batch from state ``hidden``; returns the cross-entropy and
        the detached new state."""
        objective, cross_entropy, hidden = self.loss(x, y, hidden)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return cross_entropy.detach(), detach_state(hidden)

    def check_loss(self) -> float:
        """Wait for the device; the running train loss of this epoch (the mean over the ranks
        under torchrun, where every rank calls this at the same batches). Raises
        TrainingDiverged, naming the first batch whose loss was not finite."""
        if self._unchecked:
            losses = torch.stack(self._unchecked)
            if self.dist.active:
                losses = self.dist.sum(losses) / self.dist.world_size
            self._unchecked = []
            for loss in losses:  # one by one, as the batches came: the same sum however often this runs
                self.loss_sum += loss
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                first = int(bad[0])
                batch = self.batch - len(losses) + first + 1
                raise TrainingDiverged(
                    f"loss became {losses[first].item()} at epoch {self.epoch + 1}, batch {batch}"
                )
        return self.loss_sum.item() / max(self.round_batches, 1)

    def check_weights(self) -> None:
        """Raises TrainingDiverged when any weight is no longer finite (never save those)."""
        self.check_loss()
        for name, p in self.model.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingDiverged(
                    f"weight {name} became non-finite at epoch {self.epoch + 1}, batch {self.batch}"
                )

    def _check_stop(self) -> None:
        """After a batch: stop once past the deadline, or on Ctrl-C (which in one process sets
        ``stop_reason`` itself)."""
        time_up = "time" if self.clock() > self.deadline else None
        if self.dist.active:
            self.stop_reason = self._agree_stop(time_up) or self.stop_reason
        elif time_up and self.stop_reason != "interrupt":
            self.stop_reason = time_up

    def _agree_stop(self, reason: str | None) -> str | None:
        """Under torchrun, the reason every rank stops for: the latest in STOP_REASONS among the
        ranks' own (``reason``, or a Ctrl-C that came, which this uses up). All ranks call this at
        the same batches, so they all stop at the same one."""
        if self.interrupted and stop_rank(reason) < stop_rank("interrupt"):
            reason = "interrupt"
        self.interrupted = False
        agreed = self.dist.max(stop_rank(reason))
        if agreed == stop_rank(reason):
            return reason
        return STOP_REASONS[agreed] if agreed < len(STOP_REASONS) else "requested"

    def _row_due(self) -> bool:
        """Whether the round ends after the batch just done: at the epoch's end, or in a planned
        run at the next step of ``valid_at`` (or past it, after a skip) and at the phase's end."""
        if self.valid_at is None:
            return self.batch == self.batches_per_epoch
        due = next((step for step in self.valid_at if step > self.row_step), math.inf)
        return self.plan_step >= due or self.phase_done()

    def _fit_epoch(self) -> dict[str, Any] | None:
        """Train to the end of the round under way (see the module's docstring), validate, and
        return its row; None when interrupted mid-round."""
        start = time.monotonic()
        if self.round_batches == 0:
            self.loss_sum = torch.zeros((), device=self.device)
            self.epoch_seconds = 0.0
        self._call("on_epoch_begin")
        self.net.train()
        n = self.batches_per_epoch
        planned = self.valid_at is not None
        while True:
            if self.batch == 0:
                self.hidden = None  # the streams start over
            x, y = (t.to(self.device) for t in self.train_data.batch(self.batch))
            self.lr = self.optimizer.param_groups[0]["lr"]
            loss, self.hidden = self.train_step(x, y, self.hidden)
            if self.holds_schedule():
                self.held += 1
            else:
                self.scheduler.step()
                self.plan_step += 1
            self._unchecked.append(loss)
            self.batch += 1
            self.step += 1
            self.round_batches += 1
            self.tokens_seen += y.numel() * self.dist.world_size
            synced = self.batch % self.log_every == 0 or self.batch == n or self._row_due()
            self._call("on_batch_end", self.check_loss() if synced else None)
            if synced or not self.dist.active:  # the ranks agree where they sync anyway
                self._check_stop()
            if synced and self.pacer is not None:  # every rank asks: rank 0 decides for all
                pace = self.pacer.pace(self)
                if self.stop_reason is None:
                    self.skip_ahead(pace.skip)
                self.hold_rate = pace.hold
            row_due = self._row_due()
            if planned and self.batch == n:  # a planned round goes on into the next epoch
                self.epoch += 1
                self.batch = 0
            if self.stop_reason == "interrupt" and not row_due:
                self.epoch_seconds += time.monotonic() - start
                return None
            if row_due or self.stop_reason in ("interrupt", "time"):  # the round ends here
                break
        train_loss = self.check_loss()
        if not planned:
            self.epoch += 1
            self.batch = 0
            self.hidden = None
        validation_start = time.monotonic()
        scores = (evaluate_stream(self.model, self.valid_data, self.device, self.dist, self.valid_text)
                  if self.valid_data else None)
        valid_loss = scores.loss if scores else math.nan
        row = {
            "epoch": self.epoch if not planned else round(self.epoch + self.batch / n, 3),
            "train_loss": train_loss,
            "valid_loss": valid_loss,  # nats per token
            "accuracy": scores.accuracy if scores else math.nan,
            "bits_per_token": valid_loss / math.log(2),
            "bpc": scores.bits_per_char if scores else math.nan,  # bits per character of the validation text
            "perplexity": scores.perplexity if scores else math.nan,
            "lr": self.lr,
            "step": self.step,
            "tokens": self.tokens_seen,
            "time": self.epoch_seconds + time.monotonic() - start,
        }
        self.history.append(row)
        self.row_step, self.round_batches = self.plan_step, 0
        self._call("on_epoch_end", row)
        if self.pacer is not None:
            self.pacer.validated(time.monotonic() - validation_start)
        if self.dist.active:  # rank 0 alone runs the callbacks, which may ask to stop
            self.stop_reason = self._agree_stop(self.stop_reason)
        return row

    def _callback_states(self) -> dict[str, Callback]:
        return {f"{i}.{type(cb).__name__}": cb for i, cb in enumerate(self.callbacks)}

    def training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything needed to continue exactly: CPU tensors by name, and JSON-able data."""
        self.check_weights()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optimizer = self.optimizer.state_dict()
        for index, slots in optimizer["state"].items():
            tensors.update({f"optimizer.{index}.{name}": v for name, v in slots.items()})
        hidden = tuple(torch.cat(self.dist.gather(h), dim=1) for h in state_parts(self.hidden))  # all streams
        tensors.update({f"hidden.{i}": h for i, h in enumerate(hidden)})
        tensors["loss_sum"] = self.loss_sum
        tensors["rng.torch"] = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(cuda_rng)})
        tensors.update(self._other_ranks_rng())
        numpy_state = np.random.get_state()
        info = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "lr": self.lr,
            "epoch_seconds": self.epoch_seconds,
            "plan_step": self.plan_step,
            "row_step": self.row_step,
            "held": self.held,
            "hold_rate": self.hold_rate,
            "hold_credit": self.hold_credit,
            "round_batches": self.round_batches,
            "budget_spent": self.pacer.spent() if self.pacer is not None else None,
            "stop_reason": self.stop_reason,
            "history": self.history,
            "phase": self.phase.state() if self.phase else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "optimizer_groups": optimizer["param_groups"],
            "hidden_parts": len(hidden),  # 0: none yet, 1: RNN/GRU, 2: LSTM (h, c)
            "world_size": self.dist.world_size,
            "rng": {
                "python": random.getstate(),
                "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
                "cuda_devices": len(cuda_rng),
            },
            "callbacks": {key: cb.state_dict() for key, cb in self._callback_states().items()},
        }
        cpu = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
        return cpu, info

    def _other_ranks_rng(self) -> dict[str, torch.Tensor]:
        """Under torchrun, the generator states of ranks 1, 2, ... (each draws its own dropout
        masks; rank 0's are ``rng.torch`` and ``rng.cuda.*``)."""
        if not self.dist.active:
            return {}
        states = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return {f"rng.rank{rank}.{name}": state for name, mine in states.items()
                for rank, state in enumerate(self.dist.gather(mine)) if rank}

    def load_training_state(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        """Put back what ``training_state`` captured (the model and data must match)."""
        self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        self.phase = Phase.from_state(info["phase"]) if info["phase"] else None
        self.scheduler = self._make_scheduler(self.phase) if self.phase else None
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                slots.setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict({"state": slots, "param_groups": info["optimizer_groups"]})
        if self.scheduler:
            self.scheduler.load_state_dict(info["scheduler"])
        self.epoch, self.batch, self.step = info["epoch"], info["batch"], info["step"]
        self.tokens_seen, self.lr, self.epoch_seconds = info["tokens_seen"], info["lr"], info["epoch_seconds"]
        self.plan_step, self.row_step = info.get("plan_step", self.step), info.get("row_step", 0)
        self.held, self.hold_rate, self.hold_credit = (info.get("held", 0), info.get("hold_rate", 0.0),
                                                       info.get("hold_credit", 0.0))
        self.round_batches = info.get("round_batches", self.batch)
        self.stop_reason = info["stop_reason"]
        self.history = list(info["history"])
        hidden = tuple(self.dist.own_block(tensors[f"hidden.{i}"], dim=1).to(self.device).contiguous()
                       for i in range(info["hidden_parts"]))
        self.hidden = None if not hidden else hidden[0] if len(hidden) == 1 else hidden
        self.loss_sum = tensors["loss_sum"].to(self.device)
        self._unchecked = []
        torch.set_rng_state(tensors["rng.torch"])
        cuda_rng = [tensors[f"rng.cuda.{i}"] for i in range(info["rng"]["cuda_devices"])]
        if cuda_rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_rng[: torch.cuda.device_count()])
        if self.dist.rank:
            torch.set_rng_state(tensors[f"rng.rank{self.dist.rank}.torch"])
            if self.device.type == "cuda":
                torch.cuda.set_rng_state(tensors[f"rng.rank{self.dist.rank}.cuda"], self.device)
        version, internal, gauss = info["rng"]["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, keys, pos, has_gauss, cached = info["rng"]["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        for key, callback in self._callback_states().items():
            callback.load_state_dict(info["callbacks"].get(key, {}))
