"""The resumable training state on disk: one safetensors file, written atomically.

Its tensors are the weights, the optimiser's moments, the carried hidden state and the RNG
states; everything else (position, schedule, history, callbacks' state) is JSON kept in the
file's metadata. One file, so a crash leaves the old state or the new one, never a mix; and
nothing in it is unpickled when it is read back.

A state file may come from anywhere, so before any of it is put into a learner it is checked
against that learner: every tensor's name, shape and type, the position, the phase, and the
scheduler's and optimiser's settings (the same structure a fresh scheduler of that phase has).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors

from rnnlm.atomic import write_bytes
from rnnlm.config import SCHEDULES
from rnnlm.errors import RnnlmError, shown
from rnnlm.reading import parse_json, regular_file_size
from rnnlm.train.callbacks import Callback
from rnnlm.train.learner import Learner
from rnnlm.train.schedules import PLANNED_KEYS, STATE_KEYS, Phase
from rnnlm.train.state import capture_state, restore_state

STATE_FORMAT = "rnnlm-train-state"
STATE_VERSION = "1"
ROW_NUMBERS = ("epoch", "train_loss", "valid_loss", "accuracy")  # what a history row must hold


def save_training_state(path: str | Path, learner: "Learner", extra: dict[str, Any] | None = None) -> None:
    """Write the learner's training state (rnnlm.train.state, plus ``extra`` JSON data) to ``path``
    atomically. Under torchrun every rank calls this (the state gathers every rank's share) and
    rank 0 writes."""
    tensors, info = capture_state(learner)
    if not learner.dist.is_main:
        return
    metadata = {"format": STATE_FORMAT, "version": STATE_VERSION,
                "state": json.dumps(info), "extra": json.dumps(extra or {})}
    write_bytes(path, save_safetensors(tensors, metadata=metadata))


def read_training_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Tensors, learner state and extra data of a state file; RnnlmError when it is damaged."""
    path = Path(path)
    regular_file_size(path, missing="no training state to resume")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise RnnlmError(f"{path}: damaged training state ({str(e)[:200]})") from None
    return (tensors, *state_metadata(path, metadata))


def read_state_position(path: str | Path) -> dict[str, Any]:
    """Where the training of a state file stands (its JSON part), read from the file's header:
    none of its tensors is loaded."""
    path = Path(path)
    regular_file_size(path, missing="no training state")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise RnnlmError(f"{path}: damaged training state ({str(e)[:200]})") from None
    return state_metadata(path, metadata)[0]


def state_metadata(path: Path, metadata: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The learner state and the extra data of a state file's metadata, checked."""
    if metadata.get("format") != STATE_FORMAT:
        raise RnnlmError(f"{path}: not an rnnlm training state")
    if metadata.get("version") != STATE_VERSION:
        raise RnnlmError(f"{path}: unknown training state version {shown(metadata.get('version'))} "
                         f"(this rnnlm reads version {STATE_VERSION})")
    if "state" not in metadata or "extra" not in metadata:
        raise RnnlmError(f"{path}: damaged training state (its metadata lacks the state)")
    info = parse_json(metadata["state"], str(path), "training state")
    extra = parse_json(metadata["extra"], str(path), "training state")
    if not isinstance(info, dict) or not isinstance(extra, dict):
        raise RnnlmError(f"{path}: damaged training state (its metadata is not a JSON object)")
    try:
        check_position(info)
    except ValueError as e:
        raise RnnlmError(f"{path}: damaged training state ({e})") from None
    return info, extra


def load_training_state(learner: "Learner", tensors: dict[str, torch.Tensor], info: dict[str, Any],
                        path: str | Path) -> None:
    """Put the state back into ``learner`` (rnnlm.train.state.restore_state) after checking that
    it fits; a damaged or mismatched state is refused with RnnlmError."""
    try:
        check_tensors(learner, tensors)
        check_info(learner, info)
        restore_state(learner, tensors, info)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise RnnlmError(f"{path}: training state does not fit this run ({reason})") from None


def check_tensors(learner: "Learner", tensors: dict[str, torch.Tensor]) -> None:
    """Each tensor of the state is one the learner has, of its shape, finite where it is a float."""
    params = [p for group in learner.optimizer.param_groups for p in group["params"]]  # as the optimiser numbers them
    expected = {f"model.{k}": v.shape for k, v in learner.model.state_dict().items()}
    for index, p in enumerate(params):
        expected.update({f"optimizer.{index}.exp_avg": p.shape, f"optimizer.{index}.exp_avg_sq": p.shape,
                         f"optimizer.{index}.step": torch.Size([])})
    hidden = learner.model.init_state(learner.streams, "meta")
    for i, h in enumerate(hidden if isinstance(hidden, tuple) else (hidden,)):
        expected[f"hidden.{i}"] = h.shape
    expected["loss_sum"] = torch.Size([])
    for name, tensor in tensors.items():
        if name.startswith("rng."):
            continue
        if name not in expected:
            raise ValueError(f"unexpected tensor {shown(name)}")
        if tensor.shape != expected[name]:
            raise ValueError(f"tensor {name} has shape {tuple(tensor.shape)}, the run's model needs "
                             f"{tuple(expected[name])}")
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise ValueError(f"tensor {name} does not hold finite floating point numbers")
    missing = sorted(k for k in expected if k.startswith("model.") and k not in tensors)
    slots = {k.rsplit(".", 1)[0] for k in tensors if k.startswith("optimizer.")}
    first = len(learner.optimizer.param_groups[0]["params"])  # while frozen, the first group alone has moments
    if missing or (slots and len(slots) != len(params) and not (learner.freeze_until and len(slots) == first)):
        raise ValueError(f"missing tensors {shown(missing or sorted(set(expected) - set(tensors)))}")
    if "rng.torch" not in tensors:
        raise ValueError("missing tensor rng.torch")


def check_position(info: dict[str, Any]) -> None:
    """Where the state stands, which a resume reads before anything else."""
    for key in ("epoch", "batch", "step", "tokens_seen"):
        if not _whole(info.get(key)):
            raise ValueError(f"{key} must be a whole number >= 0 (got {shown(info.get(key))})")
    if not (info.get("stop_reason") is None or isinstance(info["stop_reason"], str)):
        raise ValueError(f"stop_reason must be text (got {shown(info['stop_reason'])})")


def check_info(learner: "Learner", info: dict[str, Any]) -> None:
    """The JSON part of a state: types, ranges, and settings that match the learner's."""
    check_position(info)
    if info["batch"] >= max(learner.batches_per_epoch, 1):
        raise ValueError(f"batch {info['batch']} is past the {learner.batches_per_epoch} batches of an epoch")
    for key in ("lr", "epoch_seconds"):
        if not _number(info.get(key)):
            raise ValueError(f"{key} must be a finite number (got {shown(info.get(key))})")
    for key in ("plan_step", "row_step", "round_batches"):  # absent from states of rnnlm before --budget
        if key in info and not _whole(info[key]):
            raise ValueError(f"{key} must be a whole number >= 0 (got {shown(info[key])})")
    if info.get("budget_spent") is not None and not (_number(info["budget_spent"]) and info["budget_spent"] >= 0):
        raise ValueError(f"budget_spent must be a finite number >= 0 (got {shown(info['budget_spent'])})")
    history = info.get("history")
    if not isinstance(history, list) or not all(
            isinstance(row, dict) and all(_number(row.get(k), finite=False) for k in ROW_NUMBERS) for row in history):
        raise ValueError(f"history must be a list of epoch rows with {', '.join(ROW_NUMBERS)}")
    world = info.get("world_size", 1)
    if not (_whole(world) and world == learner.dist.world_size):
        raise ValueError(f"it was saved by {shown(world)} processes, this run has {learner.dist.world_size}")
    parts = info.get("hidden_parts")
    if parts not in (0, 2 if learner.model.config.cell == "lstm" else 1):
        raise ValueError(f"hidden_parts {shown(parts)} does not fit a {learner.model.config.cell} model")
    if not isinstance(info.get("rng"), dict) or not isinstance(info.get("callbacks"), dict) or not all(
            isinstance(v, dict) for v in info["callbacks"].values()):
        raise ValueError("rng and callbacks must be JSON objects")
    optimizer = type(learner.optimizer)([{"params": g["params"]} for g in learner.optimizer.param_groups])  # a twin
    for twin, group in zip(optimizer.param_groups, learner.optimizer.param_groups):
        twin.update({k: v for k, v in group.items() if k != "params"})
    phase = info.get("phase")
    if phase is None:
        if info.get("scheduler") is not None:
            raise ValueError("a scheduler without a phase")
    else:
        check_phase(phase)
        scheduler = Phase.from_state(phase).scheduler(optimizer, learner.batches_per_epoch)
        check_like(info.get("scheduler"), scheduler.state_dict(), "scheduler")
    check_like(info.get("optimizer_groups"), optimizer.state_dict()["param_groups"], "optimizer_groups")


def check_phase(phase: Any) -> None:
    names = set(STATE_KEYS)
    if not isinstance(phase, dict) or not names - set(PLANNED_KEYS) <= set(phase) <= names:
        raise ValueError(f"phase must be an object with {', '.join(sorted(names))}")
    counts = ("epochs", "cycle_len", "cycle_mult")
    if not all(_whole(phase[k]) and phase[k] >= 1 for k in counts) or not _whole(phase["start_epoch"]):
        raise ValueError(f"phase {', '.join(counts)} must be whole numbers >= 1, start_epoch >= 0")
    if not _whole(phase.get("start_step", 0)) or not all(
            phase.get(k) is None or (_whole(phase[k]) and phase[k] >= 1) for k in ("steps", "cycle_steps")):
        raise ValueError("phase steps and cycle_steps must be whole numbers >= 1 or null, start_step >= 0")
    if not (_number(phase["lr"]) and phase["lr"] > 0) or phase["schedule"] not in SCHEDULES:
        raise ValueError(f"phase lr must be > 0 and schedule one of {', '.join(SCHEDULES)}")


PROGRESS = {"last_epoch", "_step_count", "_last_lr", "T_cur", "T_i", "lr", "betas"}  # values that move as it trains


def check_like(saved: Any, fresh: Any, where: str, moving: bool = False) -> None:
    """``saved`` has the structure of ``fresh`` (a scheduler's or optimiser's state of the same
    settings): the same keys, lengths, text and flags, and the same numbers except where they
    move as training goes (``PROGRESS``: there any finite number, whole where ``fresh`` has one)."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or set(saved) != set(fresh):
            raise ValueError(f"{where} does not have the keys of this run's")
        for key in fresh:
            check_like(saved[key], fresh[key], f"{where}.{key}", moving or key in PROGRESS)
    elif isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            raise ValueError(f"{where} must be a list of {len(fresh)}")
        for i, (a, b) in enumerate(zip(saved, fresh)):
            check_like(a, b, f"{where}[{i}]", moving)
    elif isinstance(fresh, (int, float)) and not isinstance(fresh, bool) and moving:
        if not (_whole(saved) if isinstance(fresh, int) else _number(saved)):
            raise ValueError(f"{where} must be a {'whole number >= 0' if isinstance(fresh, int) else 'finite number'} "
                             f"(got {shown(saved)})")
    elif saved != fresh or isinstance(saved, bool) != isinstance(fresh, bool):
        raise ValueError(f"{where} is {shown(saved)}, this run's is {shown(fresh)}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any, finite: bool = True) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and (not finite or math.isfinite(value))


class SaveTrainingState(Callback):
    """Writes the resumable state every ``every`` optimiser steps (None: never mid-epoch), at
    each epoch end, and when training stops (an interrupt mid-epoch included). Put it last, so
    the other callbacks' state is up to date when it is saved. Under torchrun it runs on every
    rank, at the same batches, and rank 0 writes."""

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
