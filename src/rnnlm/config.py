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

    def validate(self) -> None:
        _check(self.cell in CELLS, f"--model must be one of {', '.join(CELLS)} (got {self.cell!r})")
        _check(self.layers >= 1, f"--layers must be >= 1 (got {self.layers})")
        _check(self.emb >= 1, f"--emb must be >= 1 (got {self.emb})")
        _check(self.hidden >= 1, f"--hidden must be >= 1 (got {self.hidden})")
        _check(0 <= self.dropout < 1, f"--dropout must be in [0, 1) (got {self.dropout})")
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
    schedule: str = "onecycle"
    cycle_len: int = 1
    cycle_mult: int = 2
    clip: float = 1.0  # max gradient norm; 0 turns clipping off
    wd: float = 0.0
    seed: int = 42
    max_minutes: float | None = None
    device: str = "auto"

    def validate(self) -> None:
        _check(self.bs >= 1, f"--bs must be >= 1 (got {self.bs})")
        _check(self.bptt >= 1, f"--bptt must be >= 1 (got {self.bptt})")
        _check(self.epochs >= 1, f"--epochs must be >= 1 (got {self.epochs})")
        _positive("lr", self.lr)
        _check(self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        _check(self.cycle_len >= 1, f"--cycle-len must be >= 1 (got {self.cycle_len})")
        _check(self.cycle_mult >= 1, f"--cycle-mult must be >= 1 (got {self.cycle_mult})")
        _check(self.clip >= 0 and math.isfinite(self.clip), f"--clip must be >= 0 (got {self.clip})")
        _check(self.wd >= 0 and math.isfinite(self.wd), f"--wd must be >= 0 (got {self.wd})")
        _check(self.seed >= 0, f"--seed must be >= 0 (got {self.seed})")
        if self.max_minutes is not None:
            _positive("max-minutes", self.max_minutes)
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
