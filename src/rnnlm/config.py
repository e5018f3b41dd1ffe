"""Settings of a run: data, model and training. Validated here, so the API and the CLI agree."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from rnnlm.errors import RnnlmError

CELLS = ("lstm", "gru", "rnn")
SCHEDULES = ("constant", "onecycle", "sgdr")
DEVICES = ("auto", "cpu", "cuda")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RnnlmError(message)


def _positive(name: str, value: float) -> None:
    _check(value > 0 and math.isfinite(value), f"--{name} must be > 0 (got {value})")


@dataclass
class DataConfig:
    source: str = "human-numbers"
    level: str | None = None  # None: the level the source suits (word for human-numbers, else char)
    lower: bool = False
    min_freq: int = 1
    max_size: int | None = None
    valid_frac: float = 0.2
    valid: str | None = None

    def validate(self) -> None:
        _check(self.level in (None, "char", "word"), f"--level must be char or word (got {self.level!r})")
        _check(self.min_freq >= 1, f"--min-freq must be >= 1 (got {self.min_freq})")
        _check(self.max_size is None or self.max_size >= 1, f"--max-size must be >= 1 (got {self.max_size})")
        _check(0 < self.valid_frac < 1, f"--valid-frac must be in (0, 1) (got {self.valid_frac})")


@dataclass
class ModelConfig:
    cell: str = "lstm"
    layers: int = 2
    emb: int = 128
    hidden: int = 256
    dropout: float = 0.1
    tie: bool = False
    # AWD-LSTM regularisation, all off by default
    emb_dropout: float = 0.0  # drop whole rows of the embedding (every use of a token in a batch)
    weight_dropout: float = 0.0  # DropConnect on the hidden-to-hidden matrices
    locked_dropout: bool = False  # --dropout masks fixed across the time steps of a batch

    def validate(self) -> None:
        _check(self.cell in CELLS, f"--model must be one of {', '.join(CELLS)} (got {self.cell!r})")
        _check(self.layers >= 1, f"--layers must be >= 1 (got {self.layers})")
        _check(self.emb >= 1, f"--emb must be >= 1 (got {self.emb})")
        _check(self.hidden >= 1, f"--hidden must be >= 1 (got {self.hidden})")
        for name in ("dropout", "emb_dropout", "weight_dropout"):
            value = getattr(self, name)
            _check(0 <= value < 1, f"--{name.replace('_', '-')} must be in [0, 1) (got {value})")
        _check(
            not self.tie or self.emb == self.hidden,
            f"--tie needs --emb equal to --hidden (got {self.emb} and {self.hidden})",
        )


@dataclass
class TrainConfig:
    bs: int = 64
    bptt: int = 20
    epochs: int = 15
    lr: float = 1e-2
    # Manual phases, the lessons' set_lrs: [(rate, epochs), ...] run one after the other on the
    # same optimiser; when given they replace lr and epochs.
    phases: list[tuple[float, int]] | None = None
    schedule: str | None = None  # None: onecycle for one rate, constant for phases
    cycle_len: int = 1
    cycle_mult: int = 2
    clip: float = 1.0  # max gradient norm; 0 turns clipping off
    wd: float = 0.0  # decoupled weight decay (AdamW)
    ar: float = 0.0  # activation regularisation: ar * mean(dropped last-layer output ** 2)
    tar: float = 0.0  # temporal AR: tar * mean((h[t] - h[t-1]) ** 2) on the last layer
    seed: int = 42
    max_minutes: float | None = None
    patience: int | None = None  # stop after this many epochs without a better valid loss
    save_every: int | None = None  # batches between resumable saves (always at each epoch end)
    device: str = "auto"

    def plan(self) -> list[tuple[float, int]]:
        """The phases to run, as (rate, epochs) pairs."""
        return [(float(lr), int(n)) for lr, n in self.phases] if self.phases else [(self.lr, self.epochs)]

    @property
    def schedule_name(self) -> str:
        return self.schedule or ("constant" if self.phases else "onecycle")

    @property
    def total_epochs(self) -> int:
        return sum(n for _, n in self.plan())

    def validate(self) -> None:
        _check(self.bs >= 1, f"--bs must be >= 1 (got {self.bs})")
        _check(self.bptt >= 1, f"--bptt must be >= 1 (got {self.bptt})")
        if self.phases is not None:
            _check(isinstance(self.phases, (list, tuple)) and len(self.phases) > 0,
                   "--lr phases must be RATE:EPOCHS pairs, comma separated (e.g. 1e-3:4,1e-4:4)")
            for phase in self.phases:
                _check(isinstance(phase, (list, tuple)) and len(phase) == 2,
                       f"--lr phase {phase!r} must be a RATE:EPOCHS pair")
                _positive("lr", phase[0])
                _check(isinstance(phase[1], int) and phase[1] >= 1,
                       f"--lr phase {phase[0]}:{phase[1]} needs a whole number of epochs >= 1")
        _check(self.epochs >= 1, f"--epochs must be >= 1 (got {self.epochs})")
        _positive("lr", self.lr)
        _check(self.schedule is None or self.schedule in SCHEDULES,
               f"--schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        _check(self.cycle_len >= 1, f"--cycle-len must be >= 1 (got {self.cycle_len})")
        _check(self.cycle_mult >= 1, f"--cycle-mult must be >= 1 (got {self.cycle_mult})")
        _check(self.clip >= 0 and math.isfinite(self.clip), f"--clip must be >= 0 (got {self.clip})")
        for name in ("wd", "ar", "tar"):
            value = getattr(self, name)
            _check(value >= 0 and math.isfinite(value), f"--{name} must be >= 0 (got {value})")
        _check(self.seed >= 0, f"--seed must be >= 0 (got {self.seed})")
        if self.max_minutes is not None:
            _positive("max-minutes", self.max_minutes)
        _check(self.patience is None or self.patience >= 1, f"--patience must be >= 1 (got {self.patience})")
        _check(self.save_every is None or self.save_every >= 1,
               f"--save-every must be >= 1 (got {self.save_every})")
        _check(self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)} (got {self.device!r})")


@dataclass
class RunConfig:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.train.validate()

    def to_dict(self) -> dict[str, Any]:
        return {"data": asdict(self.data), "model": asdict(self.model), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "RunConfig":
        """Rebuild from ``to_dict`` output; unknown keys are refused, missing keys take defaults."""
        parts = {}
        for key, kind in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
            section = obj.get(key, {})
            if not isinstance(section, dict):
                raise RnnlmError(f"config section {key!r} must be an object")
            known = {f.name for f in fields(kind)}
            unknown = set(section) - known
            if unknown:
                raise RnnlmError(f"config section {key!r} has unknown keys: {', '.join(sorted(unknown))}")
            try:
                parts[key] = kind(**section)
            except TypeError as e:
                raise RnnlmError(f"config section {key!r}: {e}") from None
        config = cls(**parts)
        try:
            config.validate()
        except TypeError as e:
            raise RnnlmError(f"config has a value of the wrong type ({e})") from None
        return config
