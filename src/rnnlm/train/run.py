"""Train a model from settings into a run folder, or resume one: the work behind ``rnnlm train``.

Under torchrun (``torchrun --nproc_per_node=N -m rnnlm train ...``) every process runs this: each
reads the data and trains its block of the streams (``rnnlm.train.distributed``); rank 0 alone
takes the run folder, writes in it and prints.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

import numpy as np
import torch

from rnnlm.atomic import WriteFailed
from rnnlm.config import BPE_DEFAULT_VOCAB, RunConfig, duration_text
from rnnlm.data.batching import StreamBatches
from rnnlm.data.corpus import is_builtin
from rnnlm.data.prepare import is_prepared
from rnnlm.data.textdata import TextData, build_text_data
from rnnlm.data.tokenizers import Tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.device import check_memory, size_text
from rnnlm.errors import RnnlmError, shown
from rnnlm.evaluation.streams import stream_batches_for_eval, text_size
from rnnlm.models import RecurrentLM
from rnnlm.models.recurrent import GATES, parameter_count
from rnnlm.runfolder import (
    BEST,
    LAST,
    METRICS,
    PLOT,
    STATE,
    discard_run_folder,
    load_run_tokenizer,
    load_vocab,
    locked_run_folder,
    new_run_folder,
    read_config,
    write_run_config,
)
from rnnlm.train.budget import Clock, Speed, make_plan
from rnnlm.train.pacing import Pacer
from rnnlm.train.plan_text import describe_plan
from rnnlm.train.probe import probe_speed, probe_time
from rnnlm.train.callbacks import (
    Callback,
    EarlyStopping,
    EpochTable,
    LossPlot,
    MetricsLog,
    ProgressBar,
    SaveCheckpoints,
    SaveCycleEnds,
)
from rnnlm.train.checkpoint import SaveTrainingState, load_training_state, read_training_state
from rnnlm.train.distributed import Distributed, check_batch_split, process_group
from rnnlm.train.learner import Learner, TrainingDiverged
from rnnlm.train.plots import has_matplotlib
from rnnlm.train.schedules import Phase
from rnnlm.train.recipe import RECIPE_FIELDS, REFERENCES, apply_recipe, choose_row


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the state was saved; the message says how to resume."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_config(config: RunConfig) -> RunConfig:
    """Validated, with absolute data paths (the run folder still finds its data from another
    directory), the schedule and epochs that phases imply and the BPE vocab size written out."""
    config.validate()
    data, t = config.data, config.train
    source = data.source if is_builtin(data.source) else os.path.abspath(data.source)
    valid = os.path.abspath(data.valid) if data.valid else None
    vocab_size = data.vocab_size
    if data.level == "bpe" and vocab_size is None and not is_prepared(data.source):  # a prepared folder has its own
        vocab_size = BPE_DEFAULT_VOCAB
    phases = [list(p) for p in t.plan()] if t.phases else None
    t = replace(t, phases=phases, lr=t.plan()[0][0], epochs=t.total_epochs, schedule=t.schedule_name)
    return replace(config, data=replace(data, source=source, valid=valid, vocab_size=vocab_size), train=t)


def check_sizes(data: TextData, bs: int, bptt: int) -> None:
    needed = bs * bptt + 1
    if len(data.train_ids) < needed:
        raise RnnlmError(
            f"training split has {len(data.train_ids)} tokens, fewer than one batch "
            f"(--bs {bs} x --bptt {bptt} + 1 = {needed}); use a longer corpus or smaller --bs/--bptt"
        )
    if len(data.valid_ids) < 2:
        raise RnnlmError(
            f"validation split has {len(data.valid_ids)} tokens; it needs at least 2 "
            "(raise --valid-frac or pass --valid FILE)"
        )


def training_memory(config: RunConfig, vocab_size: int) -> int:
    """Bytes training needs: the weights, their gradients and Adam's two moments (4 floats a
    parameter), and the activations of one batch (logits, their softmax and gradient; each
    layer's gates, outputs and gradients)."""
    m, t = config.model, config.train
    per_token = 3 * vocab_size + m.emb + 2 * m.layers * m.hidden * (GATES[m.cell] + 2)
    return 4 * (4 * parameter_count(vocab_size, m) + t.bs * t.bptt * per_token)


def check_training_memory(config: RunConfig, vocab_size: int, device: torch.device) -> None:
    """Refuse a model and batch that could never fit."""
    t = config.train
    check_memory(training_memory(config, vocab_size), device,
                 f"training {parameter_count(vocab_size, config.model):,} parameters on batches of --bs {t.bs} x "
                 f"--bptt {t.bptt}", "use a smaller --hidden, --emb, --layers, --bs or --bptt")


def fingerprint(data: TextData) -> dict[str, Any]:
    """What a resume checks: the token ids it trains and validates on are the ones it began with."""
    digest = hashlib.sha256()
    for ids in (data.train_ids, data.valid_ids):
        digest.update(str(ids.dtype).encode())
        for start in range(0, len(ids), 1 << 24):  # memory maps are read a piece at a time
            digest.update(np.ascontiguousarray(ids[start : start + (1 << 24)]).tobytes())
    return {"train_tokens": len(data.train_ids), "valid_tokens": len(data.valid_ids), "sha256": digest.hexdigest()}


def default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_data(config: RunConfig, vocab: Vocab | None = None, tokenizer: Tokenizer | None = None,
              check: bool = True) -> tuple[RunConfig, TextData]:
    """Read and encode the corpus (with the run's own tokenizer and vocab, when given); the config
    comes back with the level and lower-casing it found (a prepared folder fixes both)."""
    data = build_text_data(config.data, vocab, tokenizer)
    settings = replace(config.data, level=data.tokenizer.level, lower=data.tokenizer.lower)
    config = replace(config, data=settings)
    if check:
        check_sizes(data, config.train.bs, config.train.bptt)
    return config, data


def plan_budget(config: RunConfig, data: TextData, dist: Distributed, choose: frozenset[str], started: float,
                clock: Clock, plot_s: float = 0.0) -> tuple[RunConfig, Speed]:
    """The plan of a --budget run: the recipe of the table for the settings in ``choose`` (the
    machine's speed measured on the reference recipe), then a probe of the model and batch that
    will train, and the steps that fit (rnnlm.train.budget), each validation followed by a
    drawing of the loss plot that takes ``plot_s``."""
    t = config.train
    seconds = probe_time(t.budget)
    row = None
    if choose:
        yardstick = REFERENCES[data.tokenizer.level]
        reference = apply_recipe(config, yardstick, choose, len(data.train_ids), dist.world_size)
        check_sizes(data, reference.train.bs, reference.train.bptt)
        check_training_memory(reference, len(data.vocab), dist.device)
        speed = probe_speed(reference, data, dist.device, dist, seconds, clock, started)
        reach = (t.budget - (clock() - started)) * speed.tokens_per_s / max(len(data.train_ids), 1)
        row = choose_row(data.tokenizer.level, len(data.train_ids), dist.from_main(reach))
        config = apply_recipe(config, row.recipe, choose, len(data.train_ids), dist.world_size)
        if (config.model, config.train) != (reference.model, reference.train):
            check_sizes(data, config.train.bs, config.train.bptt)
            check_training_memory(config, len(data.vocab), dist.device)
            speed = probe_speed(config, data, dist.device, dist, seconds, clock, started)
    else:
        check_sizes(data, t.bs, t.bptt)
        check_training_memory(config, len(data.vocab), dist.device)
        speed = probe_speed(config, data, dist.device, dist, seconds, clock, started)
    setup = dist.from_main(clock() - started)
    plan = make_plan(config, data, speed, setup, sorted(choose, key=RECIPE_FIELDS.index) or None,
                     row.name if row else None, plot_s)
    n = len(StreamBatches(data.train_ids, config.train.bs, config.train.bptt))
    train_settings = replace(config.train, epochs=max(1, math.ceil(plan.steps / n)))
    return replace(config, train=train_settings, plan=plan), speed


def print_plan(config: RunConfig, data: TextData, speed: Speed, given: list[str] | None, log: TextIO | None) -> None:
    vocab = len(data.vocab)
    text = describe_plan(config, data, speed, parameter_count(vocab, config.model),
                         size_text(training_memory(config, vocab)), given)
    print(text, file=log, flush=True)


def make_learner(
    config: RunConfig, data: TextData, device: torch.device, callbacks: list[Callback] = (),
    dist: Distributed | None = None, pacer: Pacer | None = None,
) -> Learner:
    """A learner on the data; under torchrun (``dist``) on this rank's block of the streams; a
    planned run (``config.plan``) validates where its plan says, kept to its time by ``pacer``."""
    t = config.train
    dist = dist or Distributed(device=device)
    check_training_memory(config, len(data.vocab), device)
    model = RecurrentLM(len(data.vocab), config.model)
    if dist.rank:  # its own dropout masks (the weights are rank 0's: DistributedDataParallel sends them)
        torch.manual_seed(t.seed + dist.rank)
    batches = StreamBatches(data.train_ids, t.bs, t.bptt)
    held_out = data.valid_ids
    if config.plan is not None and config.plan.valid_tokens:  # a long split, validated on its beginning
        held_out = held_out[: config.plan.valid_tokens]
    valid = stream_batches_for_eval(held_out, t.bs, t.bptt)
    log_every = max(1, min(20, len(batches) // 10))  # at least ten loss points an epoch
    valid_at = config.plan.valid_at if config.plan is not None else None
    if valid_at is not None:
        log_every = max(1, min(log_every, valid_at[0]))
    return Learner(
        model,
        batches.shard(dist.rank, dist.world_size),
        valid.shard(dist.rank, dist.world_size),
        device=device, lr=t.plan()[0][0], wd=t.wd, clip=t.clip, ar=t.ar, tar=t.tar, callbacks=callbacks,
        log_every=log_every, dist=dist, valid_text=text_size(data.valid_ids, data.valid_characters),
        valid_at=valid_at, pacer=pacer, clock=pacer.clock if pacer is not None else time.monotonic,
    )


def run_callbacks(
    config: RunConfig, folder: Path, data: TextData, save_every: int | None,
    callbacks: list[Callback] | None, progress: bool | None, log: TextIO | None, dist: Distributed,
) -> tuple[list[Callback], SaveCheckpoints, SaveTrainingState]:
    """The built-in callbacks of a run folder, the caller's, and last the state saver. Under
    torchrun they run on rank 0; the other ranks run the state saver alone (its state gathers
    their share)."""
    t = config.train
    weights = SaveCheckpoints(folder / BEST, folder / LAST)
    state = SaveTrainingState(folder / STATE, save_every, extra=fingerprint(data) if dist.is_main else None)
    if not dist.is_main:
        return [state], weights, state
    chosen: list[Callback] = [ProgressBar(progress), EpochTable(log), MetricsLog(folder / METRICS), weights]
    if t.schedule_name == "sgdr":
        chosen.append(SaveCycleEnds(folder))
    if t.patience:
        chosen.append(EarlyStopping(t.patience))
    if has_matplotlib():
        chosen.append(LossPlot(folder / PLOT, title=plot_title(folder, config, data)))
    return [*chosen, *(callbacks or []), state], weights, state


def plot_title(folder: Path, config: RunConfig, data: TextData) -> str:
    m = config.model
    model = f"{m.layers}-layer {m.cell.upper()} {m.hidden}"
    return f"{folder.name}: {model} on {data.name} ({data.tokenizer.level} level)"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and kill / a job scheduler's stop


@contextmanager
def interrupt_saves(learner: Learner) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) asks the learner to stop after the batch under way, so its
    state can be saved whole; a second one acts at once, as it would without rnnlm."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        for number, before in previous.items():
            signal.signal(number, before)
        learner.interrupt()

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)


def run_phases(learner: Learner, config: RunConfig, max_minutes: float | None) -> None:
    """Run the phases of the plan that are not done yet, continuing a resumed one where it stopped."""
    t = config.train
    deadline = time.monotonic() + 60 * max_minutes if max_minutes else math.inf
    start, ran = 0, False
    with interrupt_saves(learner):
        for lr, epochs in t.plan():
            end = start + epochs
            if learner.epoch < end:
                minutes = learner.dist.from_main((deadline - time.monotonic()) / 60) if max_minutes else None
                if ran and minutes is not None and minutes <= 0:
                    learner.stop_reason = "time"
                    return
                ran = True  # a session trains at least one batch, however short its budget
                if learner.phase is not None and learner.phase.start_epoch == start:
                    learner.continue_phase(minutes)
                else:
                    learner.fit(epochs, lr, t.schedule_name, t.cycle_len, t.cycle_mult, minutes)
                if learner.stop_reason:
                    return
            start = end


def run_planned(learner: Learner, config: RunConfig) -> None:
    """Run the phases of a --budget plan that are not done yet, in steps, continuing a resumed
    one where it stopped."""
    t, plan = config.train, config.plan
    n = learner.batches_per_epoch
    start = 0
    with interrupt_saves(learner):
        for i, (lr, steps) in enumerate(plan.phases):
            end = start + steps
            if learner.plan_step < end:
                phase = learner.phase
                if phase is None or not phase.planned or phase.start_step != start:
                    cycle = plan.cycle_steps[i] if plan.cycle_steps else None
                    learner.start_phase(Phase(max(1, math.ceil(steps / n)), lr, t.schedule_name, t.cycle_len,
                                              t.cycle_mult, planned_steps=steps, cycle_steps=cycle))
                learner.continue_phase()
                if learner.stop_reason:
                    return
            start = end


def resume_command(folder: Path, dist: Distributed) -> str:
    """The command that continues a run: with as many processes as it has."""
    launcher = f"torchrun --nproc_per_node={dist.world_size} -m " if dist.active else ""
    return f"{launcher}rnnlm train --resume {folder}"


def check_world_size(folder: Path, saved: Any, world_size: int) -> None:
    """A run resumes exactly only with as many processes as it trained in (each has its own
    streams and random numbers)."""
    if isinstance(saved, int) and not isinstance(saved, bool) and saved >= 1 and saved != world_size:
        how = "without torchrun" if saved == 1 else f"with torchrun --nproc_per_node={saved}"
        raise RnnlmError(f"{folder}: trained in {saved} process{'es' if saved > 1 else ''}, this is "
                         f"{world_size}; it resumes exactly only in as many: run it {how}")


def position(epoch: int, batch: int) -> str:
    """Where training stands, in words: epoch counts completed epochs, batch those of the next."""
    return f"after epoch {epoch}" if batch == 0 else f"at epoch {epoch + 1}, batch {batch}"


def _fit(learner: Learner, config: RunConfig, folder: Path, state: SaveTrainingState,
         max_minutes: float | None) -> None:
    """Run the plan; turn an interrupt, a diverged loss or a failed write (a full disk) into a
    message that says what was kept."""
    try:
        if config.plan is not None:
            run_planned(learner, config)
        else:
            run_phases(learner, config, max_minutes)
    except TrainingDiverged as e:
        kept = (f"{folder} keeps the last good state, saved {position(*state.saved_at)}"
                if state.saved_at else "nothing was saved")
        clip = f"a smaller --clip (now {learner.clip:g})" if learner.clip else "gradient clipping (--clip 1)"
        raise TrainingDiverged(f"{e}; {kept}; try a lower --lr (now {learner.phase.lr:g}) or {clip}") from None
    except WriteFailed as e:
        if not state.saved_at:
            raise WriteFailed(f"{e}; nothing was saved") from None
        raise WriteFailed(f"{e}; {folder} keeps the state saved {position(*state.saved_at)}; make room, then "
                          f"continue with: {resume_command(folder, learner.dist)}") from None
    if learner.stop_reason == "interrupt":
        raise TrainingInterrupted(
            f"interrupted {position(learner.epoch, learner.batch)}; state saved in {folder}. "
            f"Resume with: {resume_command(folder, learner.dist)}"
        )


def train(
    config: RunConfig,
    out: str | os.PathLike | None = None,
    *,
    callbacks: list[Callback] | None = None,
    progress: bool | None = None,
    log: TextIO | None = None,
    choose: Iterable[str] = (),
    given: list[str] | None = None,
    clock: Clock = time.monotonic,
) -> tuple[Path, Learner, TextData]:
    """Read the data, build the model, train it, and write the run folder. Returns its path.

    With ``config.train.budget`` (seconds) the run is planned to fit that time, everything from
    here included (rnnlm.train.budget): the settings named in ``choose`` (of RECIPE_FIELDS)
    come from the recipe table, the others stay as given; the plan is printed first, naming the
    options in ``given`` as the user's. ``clock`` measures the budget (benchmarks on a shared
    machine pass ``time.process_time``).

    Raises TrainingInterrupted (a KeyboardInterrupt) on Ctrl-C once the state is saved, and
    TrainingDiverged (an RnnlmError) when the loss stops being finite."""
    started = clock()
    config = resolve_config(config)
    check_batch_split(config.train.bs)
    with process_group(config.train.device) as dist:
        seed_everything(config.train.seed)
        config, data, pacer = _planned(config, dist, frozenset(choose), given, started, clock, log)
        check_training_memory(config, len(data.vocab), dist.device)
        out = Path(out or default_out(data.name))
        created = not os.path.lexists(out)
        with dist.main_first(new_run_folder(out) if dist.is_main else nullcontext(out)) as folder:
            chosen, weights, state = run_callbacks(config, folder, data, config.train.save_every, callbacks,
                                                   progress, log, dist)
            try:
                learner = make_learner(config, data, dist.device, chosen, dist, pacer)
                if dist.is_main:
                    write_run_config(folder, config, data.vocab, data.name, data.tokenizer)
                _fit(learner, config, folder, state, config.train.max_minutes)
            except BaseException:
                if dist.is_main and not (weights.saved or state.saved_at):
                    discard_run_folder(folder, created)
                raise
    return folder, learner, data


def _planned(config: RunConfig, dist: Distributed, choose: frozenset[str], given: list[str] | None, started: float,
             clock: Clock, log: TextIO | None) -> tuple[RunConfig, TextData, Pacer | None]:
    """The data, and for a --budget run its plan (printed by rank 0) and the pacer that keeps
    the run to it."""
    budget = config.train.budget is not None
    config, data = load_data(config, check=not budget)
    if not budget:
        return config, data, None
    check_recipe_fields(choose)
    plot_s = 0.0
    if dist.is_main and has_matplotlib():  # the loss plot's first drawing, in the time the plan counts
        from rnnlm.train.plots import warm_up

        start = clock()
        warm_up()
        plot_s = clock() - start  # more than the next drawings take (no fonts to load): a safe guess
    config, speed = plan_budget(config, data, dist, choose, started, clock, dist.from_main(plot_s))
    if dist.is_main:
        print_plan(config, data, speed, given, log)
    return config, data, make_pacer(config, data, dist, 0.0, (started, clock))


def make_pacer(config: RunConfig, data: TextData, dist: Distributed, spent: float,
               session: tuple[float, Clock]) -> Pacer:
    """The pacer of a planned run: ``spent`` seconds of its budget used before this session,
    which began at ``session`` (when, on what clock)."""
    batches = StreamBatches(data.train_ids, config.train.bs, config.train.bptt).shard(dist.rank, dist.world_size)
    step_tokens = batches.tokens / max(len(batches), 1) * dist.world_size
    started, clock = session
    return Pacer(config.plan, spent, started, clock, step_tokens=step_tokens, dist=dist)


def check_recipe_fields(choose: frozenset[str]) -> None:
    unknown = choose - set(RECIPE_FIELDS)
    if unknown:
        raise ValueError(f"choose: not settings of the recipe table: {', '.join(sorted(unknown))}")


def plan_run(config: RunConfig, *, choose: Iterable[str] = (), given: list[str] | None = None,
             log: TextIO | None = None, clock: Clock = time.monotonic) -> tuple[RunConfig, TextData]:
    """What ``train`` would do with a --budget ``config``, without training or writing
    anything: reads the corpus, probes, prints the plan and returns the planned settings."""
    started = clock()
    config = resolve_config(config)
    if config.train.budget is None:
        raise RnnlmError("--dry-run needs --budget: without it there is no plan to show")
    check_batch_split(config.train.bs)
    with process_group(config.train.device) as dist:
        seed_everything(config.train.seed)
        config, data, _ = _planned(config, dist, frozenset(choose), given, started, clock, log)
    return config, data


def resume(
    folder: str | os.PathLike,
    *,
    max_minutes: float | None = None,
    save_every: int | None = None,
    device: str | None = None,
    callbacks: list[Callback] | None = None,
    progress: bool | None = None,
    log: TextIO | None = None,
    clock: Clock = time.monotonic,
) -> tuple[Path, Learner, TextData]:
    """Continue a run from its saved training state, exactly where it stopped. ``max_minutes``,
    ``save_every`` and ``device`` apply to this session; every other setting is the run's own.
    A --budget run goes on with its plan in the time its budget has left (``clock`` as in train)."""
    started = clock()
    folder = Path(folder)
    obj, config = read_config(folder)
    if config.plan is not None and max_minutes is not None:
        raise RnnlmError(f"{folder} trains to its --budget of {duration_text(config.plan.budget)}; it takes no "
                         "--max-minutes (its budget left carries over)")
    with process_group(device or config.train.device) as dist:
        with dist.main_first(locked_run_folder(folder) if dist.is_main else nullcontext()):
            vocab = load_vocab(folder, obj["vocab_size"], config)
            session = (started, clock)
            tokenizer = load_run_tokenizer(folder, config, vocab)
            return _resume(folder, config, vocab, tokenizer, max_minutes, save_every, dist, callbacks, progress, log,
                           session)


def check_resumable(folder: Path, config: RunConfig, info: dict[str, Any]) -> None:
    """Refuse a run that has nothing left to do: finished, stopped early, or out of budget."""
    t, plan = config.train, config.plan
    if info.get("stop_reason") == "patience":
        raise RnnlmError(f"{folder}: training already stopped early (--patience) after epoch {info.get('epoch')}; "
                         "nothing to resume")
    if plan is None:
        if info.get("epoch", 0) >= t.total_epochs:
            raise RnnlmError(f"{folder}: training already finished after epoch {info.get('epoch')}; nothing to resume")
        return
    done = info.get("plan_step", info.get("step", 0))
    if done >= plan.steps:
        raise RnnlmError(f"{folder}: training already finished its plan of {plan.steps:,} steps; nothing to resume")
    spent = info.get("budget_spent") or 0.0
    if plan.budget - spent <= plan.valid_s:
        raise RnnlmError(f"{folder}: its --budget of {duration_text(plan.budget)} is spent ({duration_text(spent)} "
                         "used); nothing to resume")


def _resume(folder: Path, config: RunConfig, vocab: Vocab, tokenizer: Tokenizer, max_minutes: float | None,
            save_every: int | None,
            dist: Distributed, callbacks: list[Callback] | None, progress: bool | None,
            log, session: tuple[float, Clock]) -> tuple[Path, Learner, TextData]:
    if dist.is_main:
        for temporary in folder.glob(".*.tmp"):  # an atomic write that a crash cut short
            if temporary.is_symlink() or temporary.is_file():
                temporary.unlink()
    tensors, info, extra = read_training_state(folder / STATE)
    t = config.train
    check_resumable(folder, config, info)
    check_world_size(folder, info.get("world_size", 1), dist.world_size)
    check_batch_split(t.bs, dist.world_size)
    if not is_builtin(config.data.source) and not os.path.lexists(config.data.source):
        raise RnnlmError(f"{folder}: its corpus {shown(config.data.source, 300)} is gone; cannot resume without it")
    config, data = load_data(config, vocab, tokenizer)
    if fingerprint(data) != extra:
        raise RnnlmError(f"{folder}: the corpus {config.data.source} changed since the run began; cannot resume")
    chosen, _, state = run_callbacks(config, folder, data, save_every or t.save_every, callbacks, progress, log,
                                     dist)
    pacer = make_pacer(config, data, dist, info.get("budget_spent") or 0.0, session) if config.plan else None
    learner = make_learner(config, data, dist.device, chosen, dist, pacer)
    load_training_state(learner, tensors, info, folder / STATE)
    state.saved_at = (learner.epoch, learner.batch)
    if dist.is_main:
        print(f"resuming {folder} {position(learner.epoch, learner.batch)} "
              f"({learner.batches_per_epoch} batches an epoch)", file=log, flush=True)
        if pacer is not None:
            print(f"its plan: {learner.plan_step:,} of {config.plan.steps:,} steps done; "
                  f"{duration_text(pacer.left())} of its --budget {duration_text(config.plan.budget)} left",
                  file=log, flush=True)
    _fit(learner, config, folder, state, max_minutes if max_minutes is not None else t.max_minutes)
    return folder, learner, data
