"""The resumable training state on disk: one safetensors file, written atomically.

Its tensors are the weights, the optimiser's moments, the carried hidden state and the RNG
states; everything else (position, schedule, history, callbacks' state) is JSON kept in the
file's metadata. One file, so a crash leaves the old state or the new one, never a mix; and
nothing in it is unpickled when it is read back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors

from rnnlm.atomic import write_bytes
from rnnlm.errors import RnnlmError
from rnnlm.train.callbacks import Callback

if TYPE_CHECKING:
    from rnnlm.train.learner import Learner

STATE_FORMAT = "rnnlm-train-state"
STATE_VERSION = "1"


def save_training_state(path: str | Path, learner: "Learner", extra: dict[str, Any] | None = None) -> None:
    """Write ``learner.training_state()`` (plus ``extra`` JSON data) to ``path`` atomically."""
    tensors, info = learner.training_state()
    metadata = {"format": STATE_FORMAT, "version": STATE_VERSION,
                "state": json.dumps(info), "extra": json.dumps(extra or {})}
    write_bytes(path, save_safetensors(tensors, metadata=metadata))


def read_training_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Tensors, learner state and extra data of a state file; RnnlmError when it is damaged."""
    path = Path(path)
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise RnnlmError(f"{path}: no training state to resume") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise RnnlmError(f"{path}: damaged training state ({e})") from None
    if metadata.get("format") != STATE_FORMAT or metadata.get("version") != STATE_VERSION:
        raise RnnlmError(f"{path}: not an rnnlm training state (version {STATE_VERSION})")
    try:
        info, extra = json.loads(metadata["state"]), json.loads(metadata["extra"])
    except (KeyError, json.JSONDecodeError) as e:
        raise RnnlmError(f"{path}: damaged training state ({e})") from None
    if not isinstance(info, dict) or not isinstance(extra, dict):
        raise RnnlmError(f"{path}: damaged training state")
    return tensors, info, extra


def load_training_state(learner: "Learner", tensors: dict[str, torch.Tensor], info: dict[str, Any],
                        path: str | Path) -> None:
    """``learner.load_training_state`` with a damaged or mismatched state turned into RnnlmError."""
    try:
        learner.load_training_state(tensors, info)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RnnlmError(f"{path}: training state does not fit this run ({reason})") from None


class SaveTrainingState(Callback):
    """Writes the resumable state every ``every`` optimiser steps (None: never mid-epoch), at
    each epoch end, and when training stops (an interrupt mid-epoch included). Put it last, so
    the other callbacks' state is up to date when it is saved."""

    def __init__(self, path: str | Path, every: int | None = None, extra: dict[str, Any] | None = None):
        self.path, self.every, self.extra = Path(path), every, extra
        self.saved_at: tuple[int, int] | None = None  # (epoch, batch) of the latest save

    def save(self, learner: "Learner") -> None:
        save_training_state(self.path, learner, self.extra)
        self.saved_at = (learner.epoch, learner.batch)

    def on_batch_end(self, learner: "Learner", loss: float | None) -> None:
        if self.every and learner.step % self.every == 0 and learner.batch < learner.batches_per_epoch:
            self.save(learner)

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        self.save(learner)

    def on_train_end(self, learner: "Learner") -> None:
        if self.saved_at != (learner.epoch, learner.batch):
            self.save(learner)
