"""``rnnlm train``: train a model on text; writes a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rnnlm.cli.options import (
    add_command,
    add_data_options,
    add_init_options,
    add_model_options,
    add_regularisation_options,
    add_schedule_options,
    add_threads_option,
    add_train_options,
    config_from_args,
    settings_given,
)
from rnnlm.cli.output import flag_speller, for_terminal
from rnnlm.errors import RnnlmError

if TYPE_CHECKING:
    from rnnlm.train.result import TrainingInterrupted, TrainResult

SESSION_OPTIONS = {"max_minutes", "save_every", "device", "tensorboard"}  # may change when a run is resumed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "train", help="train a model on text",
                    description="Train a recurrent language model; writes a run folder.",
                    epilog="Ctrl-C or SIGTERM saves the state and stops; --resume RUN goes on.\n"
                           "Several processes (DistributedDataParallel): torchrun --nproc_per_node=N "
                           "-m rnnlm train ...\n(the same options; --bs must be a multiple of N).")
    add_data_options(p)
    add_model_options(p)
    add_train_options(p)
    add_threads_option(p)
    p.add_argument("--out", metavar="DIR", default=None, help="run folder (default: runs/<data>-<time>)")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="also write TensorBoard's event files here: losses, bits/char, rate, speed and a sample "
                        "at each validation (needs: pip install 'rnnlm[tensorboard]')")
    add_regularisation_options(p)
    add_schedule_options(p)
    add_init_options(p)
    p.set_defaults(func=run, spell=flag_speller(p))


def written_settings(args: argparse.Namespace) -> list[str]:
    """The run's settings the user gave, as written (``--hidden 1024``, ``--lower``,
    ``--lr 1e-3:4,1e-4:2``): the plan of a --budget run lists them as the user's."""
    skip = SESSION_OPTIONS | {"data", "out", "budget", "init_from"}
    return [as_written(args.spell, dest, getattr(args, dest)) for dest in settings_given(args) if dest not in skip]


def as_written(spell: Callable[[str], str], dest: str, value: object) -> str:
    """An option as the user gave it, spelled by ``spell``."""
    if value is True:
        return spell(dest)
    if isinstance(value, list):
        value = ",".join(f"{lr:g}:{n}" for lr, n in value)
    return f"{spell(dest)} {value:g}" if isinstance(value, float) else f"{spell(dest)} {value}"


def run(args: argparse.Namespace) -> None:
    from rnnlm.train.run import plan_run

    if args.dry_run and not args.resume:
        config = config_from_args(args)
        if config.train.budget is None:
            config.validate()  # a setting's own mistake first, as training would say it
            raise RnnlmError("--dry-run needs --budget: without it there is no plan to show")
        plan_run(config, yours=written_settings(args), spell=args.spell)
        print("\n--dry-run: nothing trained, nothing written")
        return
    result = train_or_resume(args)
    if result.is_main:  # under torchrun rank 0 reports
        report(result)
        show_sample(result, args)


def train_or_resume(args: argparse.Namespace) -> "TrainResult":
    """The run the options ask for: a resumed one, or a new one; its stops said as the command line says them."""
    from rnnlm.atomic import WriteFailed
    from rnnlm.train.result import SaveFailed, TrainingInterrupted
    from rnnlm.train.run import resume, train

    try:
        if args.resume:
            check_resume_options(args)
            return resume(args.resume, max_minutes=args.max_minutes, save_every=args.save_every,
                          device=None if args.device == "auto" else args.device, spell=args.spell,
                          tensorboard=args.tensorboard)
        return train(config_from_args(args), args.out, yours=written_settings(args), spell=args.spell,
                     tensorboard=args.tensorboard)
    except TrainingInterrupted as e:
        raise KeyboardInterrupt(interrupted_line(e)) from None
    except SaveFailed as e:
        command = resume_command(e.folder, e.world_size)
        raise WriteFailed(f"{e.kept}; make room, then continue with: {command}") from None


def check_resume_options(args: argparse.Namespace) -> None:
    """A resumed run keeps its own settings: only those of the session may be given."""
    given = [args.spell(dest) for dest in settings_given(args) if dest not in SESSION_OPTIONS]
    if args.dry_run:
        given.append("--dry-run")
    if given:
        raise RnnlmError(f"--resume continues {args.resume} with its own settings; drop {', '.join(given)} "
                         "(only --max-minutes, --save-every, --device and --tensorboard apply to a resumed session)")


def resume_command(folder: Path, world_size: int) -> str:
    """The command that continues a run: with as many processes as it trained in."""
    launcher = f"torchrun --nproc_per_node={world_size} -m " if world_size > 1 else ""
    return f"{launcher}rnnlm train --resume {folder}"


def interrupted_line(error: "TrainingInterrupted") -> str:
    """What an interrupted run says: where it stopped, and the command that goes on."""
    return f"{error}. Resume with: {resume_command(error.folder, error.world_size)}"


def report(result: "TrainResult") -> None:
    """The last lines of a run: how it stopped, its best row, and how it kept to its time."""
    from rnnlm.config import duration_text

    best = result.best
    if result.stop_reason == "patience":
        print(f"\nstopped early (--patience): no better valid loss for {result.epoch - best['epoch']} epochs")
    print(f"\nbest valid_loss {best['valid_loss']:.4f} (epoch {best['epoch']}), "
          f"accuracy {best['accuracy']:.4f}; run saved in {result.folder}")
    use = result.budget
    if use is not None:
        notes = []
        if use.held:
            notes.append(f"{use.held:,} trained while the schedule waited: this machine ran faster than the probe said")
        if use.skipped:
            notes.append(f"{use.skipped:,} skipped to keep to the time: this machine ran slower than the probe said")
        given = duration_text(use.budget) if use.asked is None else \
            f"{duration_text(use.asked)} (the plan's {duration_text(use.budget)})"
        print(f"--budget {given}: used {duration_text(use.spent)}; "
              f"{use.trained_steps:,} steps trained for the plan's {use.planned_steps:,}"
              + (f" ({'; '.join(notes)})" if notes else ""))
    elif result.stop_reason == "time":
        print(f"stopped after --max-minutes at epoch {result.epoch}; continue with: "
              f"{resume_command(result.folder, result.world_size)}")


def show_sample(result: "TrainResult", args: argparse.Namespace) -> None:
    """A sample of what the run learned, and what to do next."""
    from rnnlm.generation.sampling import Sampling
    from rnnlm.generation.session import GenerationSession

    session = GenerationSession.load(result.folder, device=args.device)
    n = {"char": 200, "bpe": 60}.get(result.level, 40)
    text = session.sample_texts("", n, seed=args.seed, sampling=Sampling(temperature=0.8))[0]
    print(f"sample: {for_terminal(text)}")
    more = "--samples 20" if session.tokenizer.documents else "--prime '...'"
    print(f"\nnext: rnnlm generate {result.folder} {more}   |   rnnlm evaluate {result.folder}")
