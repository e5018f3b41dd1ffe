"""The pieces every command's parser is built from: the parser class, the help formatter and
the option groups that several commands share (data, model, training, schedule)."""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields

from rnnlm.config import (
    BPE_DEFAULT_VOCAB,
    BPE_MAX_VOCAB,
    BPE_MIN_VOCAB,
    CELLS,
    DECODE_ERRORS,
    DEVICES,
    FREEZE_DEFAULT,
    LAYER_DECAY_DEFAULT,
    LEVELS,
    MAX_VALID_DOCS,
    PRECISIONS,
    SCHEDULES,
    DataConfig,
    FineTuneConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    parse_duration,
)
from rnnlm.data.datasets import DATASETS

EXIT_USAGE = 2
EXIT_BUG = 1


class Parser(argparse.ArgumentParser):
    """Errors as one line on stderr with exit status 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows an option's default when it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, "", argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def add_command(sub: argparse._SubParsersAction, name: str, **kw) -> Parser:
    """A subcommand's parser with this command line's formatter."""
    return sub.add_parser(name, formatter_class=Formatter, **kw)


def add_data_options(p: argparse.ArgumentParser, prepared: bool = True) -> None:
    d = DataConfig()
    g = p.add_argument_group("data")
    g.add_argument("data", nargs="?", default=d.source, metavar="DATA",
                   help="a text file, a folder of .txt files, "
                        + ("a folder written by rnnlm prepare, " if prepared else "")
                        + f"or a built-in: {', '.join(DATASETS)}")
    g.add_argument("--level", choices=LEVELS, default=None,
                   help="token level: characters, words, or byte-level BPE subwords learnt on the training "
                        "split (default: word for human-numbers, char otherwise)")
    g.add_argument("--vocab-size", type=int, default=None, metavar="N",
                   help=f"--level bpe: tokens in its vocab, the 256 bytes and 3 specials included, "
                        f"{BPE_MIN_VOCAB}..{BPE_MAX_VOCAB} (default: {BPE_DEFAULT_VOCAB})")
    g.add_argument("--lower", action="store_true", help="lower-case the text")
    g.add_argument("--min-freq", type=int, default=d.min_freq,
                   help="keep tokens seen at least this often (bpe: merge pairs seen at least this often)")
    g.add_argument("--max-size", type=int, default=None, help="keep at most this many tokens (plus specials)")
    split = g.add_mutually_exclusive_group()
    split.add_argument("--valid-frac", type=float, default=d.valid_frac,
                       help="last fraction of the text held out for validation (documents: that fraction of "
                            f"them, drawn at random, at most {MAX_VALID_DOCS:,})")
    split.add_argument("--valid", metavar="FILE", default=None, help="validation text instead of a split")
    split.add_argument("--valid-docs", type=int, default=None, metavar="N",
                       help="with --lines or --doc-sep: hold out N documents, drawn at random")
    add_encoding_options(g, d.encoding, d.errors)
    add_document_options(g)


def add_document_options(g: argparse._ActionsContainer) -> None:
    """``--lines`` and ``--doc-sep``: the corpus is a list of documents (docs/lists.md)."""
    docs = g.add_mutually_exclusive_group()
    docs.add_argument("--lines", action="store_true",
                      help="a list: every non-empty line is a document (a name, a title), framed by a "
                           "boundary token the model learns to predict; validation: documents drawn at random")
    docs.add_argument("--doc-sep", metavar="LINE", default=None,
                      help="a list whose documents are separated by lines equal to LINE (%% for fortune files)")


def add_encoding_options(g: argparse._ActionsContainer, encoding: str | None, errors: str | None) -> None:
    """``--encoding`` and ``--errors``; None as defaults: as the run read its corpus."""
    run = "" if encoding else " (default: as the run read its corpus)"
    g.add_argument("--encoding", default=encoding, metavar="NAME",
                   help="encoding of the text files, e.g. latin-1, cp1252, utf-16 (utf-8 also reads "
                        "files that start with a UTF-16 or UTF-32 byte order mark)" + run)
    g.add_argument("--errors", choices=DECODE_ERRORS, default=errors,
                   help="bytes the encoding cannot read: strict stops with an error, replace puts "
                        "U+FFFD in their place, ignore drops them" + run)


def add_model_options(p: argparse.ArgumentParser) -> None:
    m = ModelConfig()
    g = p.add_argument_group("model")
    g.add_argument("--model", dest="cell", choices=CELLS, default=m.cell, help="recurrent cell")
    g.add_argument("--layers", type=int, default=m.layers, help="stacked recurrent layers")
    g.add_argument("--emb", type=int, default=m.emb, help="embedding size")
    g.add_argument("--hidden", type=int, default=m.hidden, help="hidden state size")
    g.add_argument("--dropout", type=float, default=m.dropout, help="dropout between layers and before the output")
    g.add_argument("--tie", action="store_true", help="tie input and output embeddings (needs --emb == --hidden)")


def add_regularisation_options(p: argparse.ArgumentParser) -> None:
    m, t = ModelConfig(), TrainConfig()
    g = p.add_argument_group("regularisation (AWD-LSTM; all off by default)")
    g.add_argument("--emb-dropout", type=float, default=m.emb_dropout,
                   help="drop whole rows of the embedding: a dropped token vanishes from the batch")
    g.add_argument("--weight-dropout", type=float, default=m.weight_dropout,
                   help="DropConnect on the hidden-to-hidden weights, a fresh mask each batch")
    g.add_argument("--locked-dropout", action="store_true",
                   help="--dropout keeps one mask across the time steps of a batch (variational)")
    g.add_argument("--ar", type=float, default=t.ar,
                   help="activation regularisation: penalty on the size of the last layer's output")
    g.add_argument("--tar", type=float, default=t.tar,
                   help="temporal activation regularisation: penalty on its change between steps")
    g.add_argument("--wd", type=float, default=t.wd, help="decoupled weight decay (AdamW)")


def add_train_options(p: argparse.ArgumentParser) -> None:
    """The options of one training step, shared by train and lr-find."""
    t = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--bs", type=int, default=t.bs, help="batch size: number of parallel streams")
    g.add_argument("--bptt", type=int, default=t.bptt, help="tokens per stream per batch")
    g.add_argument("--clip", type=float, default=t.clip, help="max gradient norm (0: off)")
    g.add_argument("--seed", type=int, default=t.seed, help="fixes initialisation and sampling")
    add_device_option(g)


def add_device_option(p: argparse._ActionsContainer) -> None:
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when present")


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice, one per physical core)")


def pick(args: argparse.Namespace, kind: type) -> dict:
    return {f.name: getattr(args, f.name) for f in fields(kind) if hasattr(args, f.name)}


def rates(text: str) -> float | list[tuple[float, int]]:
    """``--lr``: one rate, or phases RATE:EPOCHS,RATE:EPOCHS,..."""
    if ":" not in text:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a rate or RATE:EPOCHS phases: {text!r}") from None
    phases = []
    for part in text.split(","):
        rate, _, epochs = part.partition(":")
        try:
            phases.append((float(rate), int(epochs)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"phase {part!r} is not RATE:EPOCHS (e.g. 1e-3:4)") from None
    return phases


def add_schedule_options(p: argparse.ArgumentParser) -> None:
    t = TrainConfig()
    g = p.add_argument_group("schedule and run")
    g.add_argument("--epochs", type=int, default=None, help=f"passes over the training split (default: {t.epochs})")
    g.add_argument("--lr", type=rates, default=t.lr, metavar="LR|LR:EPOCHS,...",
                   help="learning rate (peak rate for onecycle), or phases run one after the other on "
                        "the same optimiser, e.g. 1e-3:4,1e-4:4 (4 epochs at 1e-3, then 4 at 1e-4)")
    g.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning-rate schedule in each phase, stepped every batch "
                        "(default: onecycle for one rate, constant for phases)")
    g.add_argument("--cycle-len", type=int, default=t.cycle_len, help="sgdr: epochs in the first cycle")
    g.add_argument("--cycle-mult", type=int, default=t.cycle_mult, help="sgdr: growth of each next cycle")
    g.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    g.add_argument("--budget", metavar="TIME", default=None,
                   help="train for this long in all (e.g. 90s, 10m, 1.5h): a short probe measures the speed, "
                        "the schedule is planned to end, annealed, when the time is up, and without model "
                        "options the recipe is chosen for the corpus and the machine (instead of --epochs)")
    g.add_argument("--dry-run", action="store_true",
                   help="with --budget: print the plan (model, speed, schedule) and stop, writing nothing")
    g.add_argument("--precision", choices=PRECISIONS, default=t.precision,
                   help="of the training steps: bf16 (bfloat16 autocast, faster where the CPU has it) or fp32; "
                        "auto: bf16 where the CPU has bfloat16 instructions. Validation and generation stay fp32 "
                        "(default: auto with --budget, fp32 otherwise)")
    g.add_argument("--patience", type=int, default=None,
                   help="stop when valid loss has not improved for this many epochs")
    g.add_argument("--save-every", type=int, default=None, metavar="N",
                   help="also save the resumable state every N batches (it is saved at each epoch end)")
    g.add_argument("--resume", metavar="RUN", default=None,
                   help="continue RUN exactly where it stopped, with its own settings "
                        "(--max-minutes, --save-every, --device and --tensorboard may be given)")


def add_init_options(p: argparse.ArgumentParser) -> None:
    """``--init-from`` and how a run that starts from a trained one learns (docs/fine-tuning.md)."""
    g = p.add_argument_group("starting from a trained run (fine-tuning)")
    g.add_argument("--init-from", metavar="RUN", default=None,
                   help="a new run that starts from the finished run RUN: its weights, architecture and tokenizer "
                        "(level, lower-casing, BPE merges); data, rate, schedule, epochs or --budget are this run's. "
                        "Not --resume, which continues an interrupted run exactly")
    g.add_argument("--extend-vocab", action="store_true",
                   help="with --init-from: the new text's tokens RUN lacks get rows of their own, starting as the "
                        "mean of RUN's (without it they are read as xxunk; either way they are counted and shown)")
    g.add_argument("--freeze", type=float, default=FREEZE_DEFAULT, metavar="SHARE",
                   help="with --init-from: train the embedding and head alone for this share of the schedule, "
                        "then the whole model")
    g.add_argument("--layer-decay", type=float, default=LAYER_DECAY_DEFAULT, metavar="D",
                   help="with --init-from: each recurrent layer learns at the rate of the one above divided by D "
                        "(discriminative rates; ULMFiT used 2.6; 1: one rate)")


def option_defaults() -> dict[str, object]:
    """What each option of a run's settings defaults to, by dest: its config field's default (the
    options take theirs from the configs), and None, "unset", for --epochs and --out."""
    data = DataConfig()
    return {**asdict(data), "data": data.source, **asdict(ModelConfig()), **asdict(TrainConfig()), "epochs": None,
            "out": None, **asdict(FineTuneConfig())}


def settings_given(args: argparse.Namespace) -> list[str]:
    """The dests of the run's settings the user gave, in the parser's order: those the command
    line typed (``args.typed``, rnnlm.cli.output.typed_dests), even at their default; where that
    is not known, those that are not at their default."""
    defaults = option_defaults()
    typed = getattr(args, "typed", None)
    return [dest for dest, value in vars(args).items()
            if dest in defaults and (dest in typed if typed is not None else value != defaults[dest])]


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's settings as the options set them, with the settings the user gave (``given``)."""
    data = DataConfig(**{**pick(args, DataConfig), "source": args.data})
    train = pick(args, TrainConfig)
    lr = getattr(args, "lr", None)
    if isinstance(lr, list):
        train.update(lr=lr[0][0], phases=lr)
    if train.get("epochs") is None:
        train.pop("epochs", None)
    budget = getattr(args, "budget", None)
    if budget is not None:
        train["budget"] = parse_duration(budget)
    given = frozenset("source" if dest == "data" else dest for dest in settings_given(args) if dest != "out")
    fine_tune = FineTuneConfig(**pick(args, FineTuneConfig))
    return RunConfig(data, ModelConfig(**pick(args, ModelConfig)), TrainConfig(**train),
                     fine_tune=None if fine_tune == FineTuneConfig() else fine_tune, given=given)
