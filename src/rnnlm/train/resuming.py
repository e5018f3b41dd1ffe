"""Resuming a run from its saved training state: what refuses a resume (nothing left to do,
another number of processes, a corpus gone or changed), and the learner put back exactly where
the run stopped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rnnlm.config import RunConfig, duration_text
from rnnlm.data.corpus import is_builtin
from rnnlm.data.textdata import TextData
from rnnlm.distributed import Distributed, check_batch_split
from rnnlm.errors import RnnlmError, SettingError, literal, shown
from rnnlm.runfolder import STATE, load_run_tokenizer, load_vocab
from rnnlm.train.assembly import make_learner, run_callbacks
from rnnlm.train.checkpoint import SaveTrainingState, load_training_state, read_training_state
from rnnlm.train.learner import Learner
from rnnlm.train.planning import make_pacer
from rnnlm.train.session import Session
from rnnlm.train.setup import fingerprint, load_data


def check_session(folder: Path, config: RunConfig, max_minutes: float | None) -> None:
    """A planned run goes on in the time its budget has left: a session takes no time of its own."""
    if config.plan is not None and max_minutes is not None:
        budget = duration_text(config.plan.limit)
        raise SettingError("max_minutes", f"{literal(folder)} trains to its {{budget}} of {budget}; it takes no "
                                          "{max_minutes} (its budget left carries over)")


def check_resumable(folder: Path, config: RunConfig, info: dict[str, Any]) -> None:
    """Refuse a run that has nothing left to do: finished, stopped early, or out of budget."""
    t, plan = config.train, config.plan
    if info.get("stop_reason") == "patience":
        raise SettingError("patience", f"{literal(folder)}: training already stopped early ({{patience}}) after epoch "
                                       f"{info.get('epoch')}; nothing to resume")
    if plan is None:
        if info.get("epoch", 0) >= t.total_epochs:
            raise RnnlmError(f"{folder}: training already finished after epoch {info.get('epoch')}; nothing to resume")
        return
    done = info.get("plan_step", info.get("step", 0))
    if done >= plan.steps:
        raise RnnlmError(f"{folder}: training already finished its plan of {plan.steps:,} steps; nothing to resume")
    spent = info.get("budget_spent") or 0.0
    if plan.limit - spent <= plan.valid_s:
        raise SettingError("budget", f"{literal(folder)}: its {{budget}} of {duration_text(plan.limit)} is spent "
                                     f"({duration_text(spent)} used); nothing to resume")


def check_world_size(folder: Path, saved: Any, world_size: int) -> None:
    """A run resumes exactly only with as many processes as it trained in (each has its own
    streams and random numbers)."""
    if isinstance(saved, int) and not isinstance(saved, bool) and saved >= 1 and saved != world_size:
        how = "without torchrun" if saved == 1 else f"with torchrun {{nproc_per_node}}={saved}"
        processes = f"{saved} process{'es' if saved > 1 else ''}"
        raise SettingError("nproc_per_node", f"{literal(folder)}: trained in {processes}, this is {world_size}; it "
                                             f"resumes exactly only in as many: run it {how}")


def read_state(folder: Path, config: RunConfig, dist: Distributed) -> tuple[dict, dict[str, Any], dict[str, Any]]:
    """The run's training state (tensors, learner state, the corpus's fingerprint), once it is
    known to have something left to do in this many processes; an atomic write that a crash
    cut short is swept away first."""
    if dist.is_main:
        for temporary in folder.glob(".*.tmp"):
            if temporary.is_symlink() or temporary.is_file():
                temporary.unlink()
    tensors, info, extra = read_training_state(folder / STATE)
    check_resumable(folder, config, info)
    check_world_size(folder, info.get("world_size", 1), dist.world_size)
    check_batch_split(config.train.bs, dist.world_size)
    return tensors, info, extra


def resumed_learner(folder: Path, obj: dict[str, Any], config: RunConfig, dist: Distributed, session: Session,
                    save_every: int | None) -> tuple[Learner, TextData, RunConfig, SaveTrainingState]:
    """The learner of the run in ``folder`` (``obj``: its config.json), exactly where it stopped,
    on the same corpus; the state saver saves every ``save_every`` batches (None: as the run did)."""
    vocab = load_vocab(folder, obj["vocab_size"], config)
    tokenizer = load_run_tokenizer(folder, config, vocab)
    tensors, info, extra = read_state(folder, config, dist)
    if not is_builtin(config.data.source) and not os.path.lexists(config.data.source):
        raise RnnlmError(f"{folder}: its corpus {shown(config.data.source, 300)} is gone; cannot resume without it")
    config, data = load_data(config, vocab, tokenizer)
    if fingerprint(data) != extra:
        raise RnnlmError(f"{folder}: the corpus {config.data.source} changed since the run began; cannot resume")
    chosen, _, state = run_callbacks(config, folder, data, save_every or config.train.save_every, session, dist)
    pacer = make_pacer(config, data, dist, info.get("budget_spent") or 0.0, session) if config.plan else None
    learner = make_learner(config, data, dist.device, chosen, dist, pacer)
    load_training_state(learner, tensors, info, folder / STATE)
    state.saved_at = (learner.epoch, learner.batch)
    return learner, data, config, state


def announce(folder: Path, learner: Learner, config: RunConfig, session: Session) -> None:
    """Where the resumed run stands, and for a planned run what its plan and budget have left."""
    session.say(f"resuming {folder} {learner.position.text()} ({learner.batches_per_epoch} batches an epoch)")
    if learner.pacer is not None:
        session.say(f"its plan: {learner.plan_step:,} of {config.plan.steps:,} steps done; "
                    f"{duration_text(learner.pacer.left())} of its {session.spell('budget')} "
                    f"{duration_text(config.plan.limit)} left")
