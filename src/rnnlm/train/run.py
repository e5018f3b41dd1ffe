"""Train a model from settings into a run folder, or resume one: the work behind ``rnnlm train``.

Under torchrun (``torchrun --nproc_per_node=N -m rnnlm train ...``) every process runs this: each
reads the data and trains its block of the streams (``rnnlm.distributed``); rank 0 alone
takes the run folder, writes in it and prints.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Sequence, TextIO

from rnnlm.atomic import WriteFailed
from rnnlm.config import RunConfig
from rnnlm.data.textdata import TextData
from rnnlm.distributed import check_batch_split, process_group
from rnnlm.errors import SettingError, literal
from rnnlm.runfolder import discard_run_folder, locked_run_folder, new_run_folder, read_config, write_run_config
from rnnlm.train.assembly import make_learner, run_callbacks
from rnnlm.train.base import BaseRun, adopt_base, read_base
from rnnlm.train.budget import Clock
from rnnlm.train.callbacks import Callback
from rnnlm.train.checkpoint import SaveTrainingState
from rnnlm.train.learner import Learner, TrainingDiverged
from rnnlm.train.memory import check_training_memory
from rnnlm.train.phases import run_phases, train_phases
from rnnlm.train.planning import load_and_plan
from rnnlm.train.position import position_text
from rnnlm.train.result import SaveFailed, TrainingInterrupted, TrainResult
from rnnlm.train.resuming import announce, check_session, resumed_learner
from rnnlm.train.session import Session, field_name
from rnnlm.train.setup import default_out, resolve_config, seed_everything


def train(
    config: RunConfig,
    out: str | os.PathLike | None = None,
    *,
    callbacks: list[Callback] | None = None,
    progress: bool | None = None,
    log: TextIO | None = None,
    yours: Sequence[str] = (),
    spell: Callable[[str], str] = field_name,
    clock: Clock = time.monotonic,
    tensorboard: str | os.PathLike | None = None,
) -> TrainResult:
    """Read the data, build the model, train it, and write the run folder; returns the result.

    With ``config.train.budget`` (seconds) the run is planned to fit that time, everything from
    here included (rnnlm.train.budget): the settings of the recipe rules (RECIPE_FIELDS) the
    user did not give (``config.given``) come from the table, the others stay as they are; the
    plan is printed first, listing ``yours`` (the user's settings, as they wrote them), each
    setting it names spelled by ``spell``. ``clock`` measures the budget (benchmarks on a shared
    machine pass ``time.process_time``). With ``tensorboard`` (a folder) TensorBoard's event files
    are written there too (rnnlm.train.tensorboard).

    Raises TrainingInterrupted (a KeyboardInterrupt) on Ctrl-C once the state is saved,
    TrainingDiverged (an RnnlmError) when the loss stops being finite, and SaveFailed (an
    RnnlmError) when a write fails once the state was saved."""
    session = Session.begin(callbacks, progress, log, spell, clock, tensorboard)
    config, base = resolve_with_base(config)
    check_batch_split(config.train.bs)
    with process_group(config.train.device) as dist:
        seed_everything(config.train.seed)
        config, data, pacer = load_and_plan(config, dist, yours, session, base)
        check_training_memory(config, len(data.vocab), dist.device)
        out = Path(out or default_out(data.name))
        check_out_of_base(out, base)
        created = not os.path.lexists(out)
        with dist.main_first(new_run_folder(out) if dist.is_main else nullcontext(out)) as folder:
            chosen, weights, state = run_callbacks(config, folder, data, config.train.save_every, session, dist)
            try:
                learner = make_learner(config, data, dist.device, chosen, dist, pacer, base and base.weights)
                if dist.is_main:
                    write_run_config(folder, config, data.vocab, data.name, data.tokenizer, data.items)
                fit(learner, config, folder, state, config.train.max_minutes)
            except BaseException:
                if dist.is_main and not (weights.saved or state.saved_at):
                    discard_run_folder(folder, created)
                raise
    return TrainResult.of(folder, learner, data)


def plan_run(config: RunConfig, *, yours: Sequence[str] = (), log: TextIO | None = None,
             spell: Callable[[str], str] = field_name, clock: Clock = time.monotonic) -> tuple[RunConfig, TextData]:
    """What ``train`` would do with a --budget ``config``, without training or writing
    anything: reads the corpus, probes, prints the plan and returns the planned settings."""
    session = Session.begin(log=log, spell=spell, clock=clock)
    config, base = resolve_with_base(config)
    if config.train.budget is None:
        raise SettingError("budget", "{budget} is not set: without it there is no plan to show")
    check_batch_split(config.train.bs)
    with process_group(config.train.device) as dist:
        seed_everything(config.train.seed)
        config, data, _ = load_and_plan(config, dist, yours, session, base)
    return config, data


def resolve_with_base(config: RunConfig) -> tuple[RunConfig, BaseRun | None]:
    """The settings resolved (rnnlm.train.setup); for a run that starts from a trained one
    (``config.fine_tune``) its base read and its settings adopted (rnnlm.train.base) first."""
    if config.base is None:
        return resolve_config(config), None
    config.fine_tune.validate()  # the model's settings are checked against the base's, then validated
    base = read_base(config.base)
    return resolve_config(adopt_base(config, base)), base


def check_out_of_base(out: Path, base: BaseRun | None) -> None:
    """A fine-tuned run's folder is not its base, nor inside it: the base is only read."""
    if base is None:
        return
    where, folder = Path(os.path.realpath(out)), Path(os.path.realpath(base.folder))
    if where == folder or folder in where.parents:
        raise SettingError("out", f"{{out}} {literal(out)} is in the base run {literal(base.folder)}, which a run "
                                  "that starts from it only reads; choose another {out}")


def resume(
    folder: str | os.PathLike,
    *,
    max_minutes: float | None = None,
    save_every: int | None = None,
    device: str | None = None,
    callbacks: list[Callback] | None = None,
    progress: bool | None = None,
    log: TextIO | None = None,
    spell: Callable[[str], str] = field_name,
    clock: Clock = time.monotonic,
    tensorboard: str | os.PathLike | None = None,
) -> TrainResult:
    """Continue a run from its saved training state, exactly where it stopped. ``max_minutes``,
    ``save_every`` and ``device`` apply to this session; every other setting is the run's own.
    A --budget run goes on with its plan in the time its budget has left (``spell`` and
    ``clock``, ``tensorboard`` as in train)."""
    session = Session.begin(callbacks, progress, log, spell, clock, tensorboard)
    folder = Path(folder)
    obj, config = read_config(folder)
    check_session(folder, config, max_minutes)
    with process_group(device or config.train.device) as dist:
        with dist.main_first(locked_run_folder(folder) if dist.is_main else nullcontext()):
            learner, data, config, state = resumed_learner(folder, obj, config, dist, session, save_every)
            if dist.is_main:
                announce(folder, learner, config, session)
            fit(learner, config, folder, state, max_minutes if max_minutes is not None else config.train.max_minutes)
    return TrainResult.of(folder, learner, data)


def fit(learner: Learner, config: RunConfig, folder: Path, state: SaveTrainingState,
        max_minutes: float | None) -> None:
    """Train the run's phases that are left; turn an interrupt, a diverged loss or a failed
    write (a full disk) into a message that says what was kept."""
    try:
        train_phases(learner, run_phases(config, learner.batches_per_epoch), max_minutes)
    except TrainingDiverged as e:
        kept = (f"{literal(folder)} keeps the last good state, saved {position_text(*state.saved_at)}"
                if state.saved_at else "nothing was saved")
        clip = f"a smaller {{clip}} (now {learner.clip:g})" if learner.clip else "gradient clipping ({clip} 1)"
        lr = learner.phase.lr
        raise TrainingDiverged(f"{e.message}; {kept}; try a lower {{lr}} (now {lr:g}) or {clip}") from None
    except WriteFailed as e:
        if not state.saved_at:
            raise WriteFailed(f"{e}; nothing was saved") from None
        kept = f"{e}; {folder} keeps the state saved {position_text(*state.saved_at)}"
        raise SaveFailed(kept, folder, learner.dist.world_size) from None
    if learner.stop_reason == "interrupt":
        raise TrainingInterrupted(folder, learner.position.text(), learner.dist.world_size)
