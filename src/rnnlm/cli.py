"""The ``rnnlm`` command. Thin: it parses options, calls the API and prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import unicodedata
from dataclasses import fields
from typing import Sequence

from rnnlm import __version__
from rnnlm.config import (
    CELLS, DECODE_ERRORS, DEVICES, SCHEDULES, DataConfig, ModelConfig, RunConfig, TrainConfig,
)
from rnnlm.data.datasets import DATASETS
from rnnlm.errors import RnnlmError
from rnnlm.train.distributed import launched_rank, launched_world_size, lost_a_peer

EXIT_USAGE = 2
EXIT_BUG = 1
QUIET_EXIT_DELAY = 1.0  # seconds the ranks other than 0 wait before they fail (see main)


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


def add_data_options(p: argparse.ArgumentParser, prepared: bool = True) -> None:
    d = DataConfig()
    g = p.add_argument_group("data")
    g.add_argument("data", nargs="?", default=d.source, metavar="DATA",
                   help="a text file, a folder of .txt files, "
                        + ("a folder written by rnnlm prepare, " if prepared else "")
                        + f"or a built-in: {', '.join(DATASETS)}")
    g.add_argument("--level", choices=("char", "word"), default=None,
                   help="token level (default: word for human-numbers, char otherwise)")
    g.add_argument("--lower", action="store_true", help="lower-case the text")
    g.add_argument("--min-freq", type=int, default=d.min_freq, help="keep tokens seen at least this often")
    g.add_argument("--max-size", type=int, default=None, help="keep at most this many tokens (plus specials)")
    split = g.add_mutually_exclusive_group()
    split.add_argument("--valid-frac", type=float, default=d.valid_frac,
                       help="last fraction of the text held out for validation")
    split.add_argument("--valid", metavar="FILE", default=None, help="validation text instead of a split")
    add_encoding_options(g, d.encoding, d.errors)


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
    g.add_argument("--device", choices=DEVICES, default=t.device, help="auto: CUDA when present")


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
    g.add_argument("--patience", type=int, default=None,
                   help="stop when valid loss has not improved for this many epochs")
    g.add_argument("--save-every", type=int, default=None, metavar="N",
                   help="also save the resumable state every N batches (it is saved at each epoch end)")
    g.add_argument("--resume", metavar="RUN", default=None,
                   help="continue RUN exactly where it stopped, with its own settings "
                        "(--max-minutes, --save-every and --device may be given)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    data = DataConfig(**{**pick(args, DataConfig), "source": args.data})
    train = pick(args, TrainConfig)
    lr = getattr(args, "lr", None)
    if isinstance(lr, list):
        if args.epochs is not None:
            raise RnnlmError("--epochs conflicts with --lr phases, which give the epochs of each phase")
        train.update(lr=lr[0][0], phases=lr, epochs=sum(n for _, n in lr))
    elif train.get("epochs") is None:
        train.pop("epochs", None)
    return RunConfig(data, ModelConfig(**pick(args, ModelConfig)), TrainConfig(**train))


SESSION_OPTIONS = {"max_minutes", "save_every", "device"}  # may change when a run is resumed


def run_settings_given(args: argparse.Namespace) -> list[str]:
    """The options of ``rnnlm train`` that set up a run and differ from their defaults, as the
    user wrote them (a resumed run keeps its own)."""
    defaults = vars(build_parser().parse_args(["train"]))
    settings = {f.name for kind in (DataConfig, ModelConfig, TrainConfig) for f in fields(kind)} | {"data", "out"}
    names = {"cell": "--model", "data": "DATA", "source": "DATA"}
    return [names.get(k, "--" + k.replace("_", "-")) for k, v in vars(args).items()
            if k in settings - SESSION_OPTIONS and v != defaults.get(k)]


def cmd_train(args: argparse.Namespace) -> None:
    from rnnlm.generate import generate_text
    from rnnlm.runfolder import load_run
    from rnnlm.train.run import resume, resume_command, train

    if args.resume:
        given = run_settings_given(args)
        if given:
            raise RnnlmError(f"--resume continues {args.resume} with its own settings; drop {', '.join(given)} "
                             "(only --max-minutes, --save-every and --device apply to a resumed session)")
        folder, learner, data = resume(args.resume, max_minutes=args.max_minutes, save_every=args.save_every,
                                       device=None if args.device == "auto" else args.device)
    else:
        folder, learner, data = train(config_from_args(args), args.out)
    if not learner.dist.is_main:  # under torchrun rank 0 reports
        return
    best = min(learner.history, key=lambda r: r["valid_loss"])
    if learner.stop_reason == "patience":
        print(f"\nstopped early (--patience): no better valid loss for {learner.epoch - best['epoch']} epochs")
    print(f"\nbest valid_loss {best['valid_loss']:.4f} (epoch {best['epoch']}), "
          f"accuracy {best['accuracy']:.4f}; run saved in {folder}")
    if learner.stop_reason == "time":
        print(f"stopped after --max-minutes at epoch {learner.epoch}; continue with: "
              f"{resume_command(folder, learner.dist)}")
    run = load_run(folder, device=args.device)
    n = 200 if data.tokenizer.level == "char" else 40
    text = generate_text(run.model, run.tokenizer, run.vocab, "", n, seed=args.seed, temperature=0.8)[0]
    print(f"sample: {for_terminal(text)}")
    print(f"\nnext: rnnlm generate {folder} --prime '...'   |   rnnlm evaluate {folder}")


def cmd_lr_find(args: argparse.Namespace) -> None:
    from pathlib import Path

    from rnnlm.atomic import check_writable
    from rnnlm.train.lr_find import find_lr
    from rnnlm.train.plots import has_matplotlib

    if args.plot:
        check_writable(args.plot, "--plot")
        if not has_matplotlib():
            raise RnnlmError("--plot needs matplotlib: pip install 'rnnlm[plot]'")
    finding = find_lr(config_from_args(args), start=args.start_lr, end=args.end_lr, batches=args.batches)
    print(f"{'lr':>10}  {'loss':>8}  {'smoothed':>8}")
    step = max(1, len(finding.lrs) // 12)
    for i in range(0, len(finding.lrs), step):
        print(f"{finding.lrs[i]:>10.2e}  {finding.losses[i]:>8.4f}  {finding.smoothed[i]:>8.4f}")
    stop = "diverged" if finding.diverged else "reached --end-lr"
    print(f"\n{len(finding.lrs)} batches, {stop} at lr {finding.lrs[-1]:.2e}; "
          f"lowest smoothed loss {min(finding.smoothed):.4f} at lr {finding.best_lr:.2e}")
    print(f"suggested lr: {finding.suggested_lr:.2e} (a tenth of the rate at the minimum)")
    if args.plot:
        finding.plot(args.plot, title=f"learning-rate finder: {Path(args.data).name}")
        print(f"plot written to {args.plot}")


def cmd_generate(args: argparse.Namespace) -> None:
    from rnnlm.generate import check_sampling, generate, generate_text
    from rnnlm.runfolder import load_run

    check_sampling(args.n, args.samples, args.temperature, args.top_k, args.top_p, args.seed)
    run = load_run(args.run, device=args.device)
    options = dict(samples=args.samples, seed=args.seed, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, greedy=args.greedy)
    if args.samples == 1:
        separator = " " if run.tokenizer.level == "word" else ""
        sys.stdout.write(for_terminal(args.prime))
        first = True
        for pieces in generate(run.model, run.tokenizer, run.vocab, args.prime, args.n, **options):
            sys.stdout.write(for_terminal(("" if first and not args.prime else separator) + pieces[0]))
            sys.stdout.flush()
            first = False
        sys.stdout.write("\n")
        return
    texts = generate_text(run.model, run.tokenizer, run.vocab, args.prime, args.n, **options)
    for i, text in enumerate(texts, 1):
        print(f"--- sample {i} ---\n{for_terminal(text)}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rnnlm.evaluate import evaluate_run
    from rnnlm.runfolder import load_run

    run = load_run(args.run, device=args.device)
    scores = evaluate_run(run, args.data, args.encoding, args.errors)
    if args.json:
        print(json.dumps(scores.as_dict()))
        return
    unit = "char" if run.tokenizer.level == "char" else "token"
    print(f"tokens      {scores.tokens}")
    print(f"loss        {scores.loss:.4f} nats/{unit}")
    print(f"perplexity  {scores.perplexity:.4f}")
    print(f"bits        {scores.bits:.4f} bits/{unit}")
    print(f"accuracy    {scores.accuracy:.4f}")


def cmd_prepare(args: argparse.Namespace) -> None:
    from rnnlm.data.prepare import prepare

    meta = prepare(DataConfig(**{**pick(args, DataConfig), "source": args.data}), args.out)
    tokens = meta["tokens"]
    print(f"prepared {meta['name']}: {meta['documents']:,} document(s), {meta['characters']:,} characters, "
          f"{meta['level']} level, vocab {meta['vocab_size']:,} tokens ({meta['dtype']})")
    print(f"train {tokens['train']:,} tokens, valid {tokens['valid']:,} tokens, in {meta['seconds']:.2f} s; "
          f"written to {args.out}")
    print(f"\nnext: rnnlm train {args.out}")


def cmd_datasets(args: argparse.Namespace) -> None:
    from rnnlm.data.datasets import cache_dir

    for d in DATASETS.values():
        where = "built in" if d.builtin else f"downloaded to {cache_dir() / (d.name + '.txt')}"
        print(f"{d.name:<16} {d.level:<5} {d.description}; {where}")


def cmd_lesson(args: argparse.Namespace) -> None:
    from pathlib import Path

    from rnnlm.lessons import (
        LessonContext,
        format_list,
        format_table,
        prepare_folder,
        run_lessons,
        select_lessons,
    )

    if args.list:
        print(format_list())
        return
    lessons = select_lessons(args.names, args.all)
    ctx = LessonContext(nietzsche=Path(args.nietzsche) if args.nietzsche else None,
                        scale=args.epochs_scale, seed=args.seed, device=args.device)
    ctx.check(lessons)
    ctx.out = prepare_folder(Path(args.out) if args.out else None)
    results = run_lessons(lessons, ctx)
    print(f"\n{format_table(results)}\n\nresults in {ctx.out}: results.md, results.json")


def build_parser() -> Parser:
    parser = Parser(prog="rnnlm", description="Train, measure and sample recurrent language models.",
                    formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("train", help="train a model on text", formatter_class=Formatter,
                       description="Train a recurrent language model; writes a run folder.",
                       epilog="Ctrl-C or SIGTERM saves the state and stops; --resume RUN goes on.\n"
                              "Several processes (DistributedDataParallel): torchrun --nproc_per_node=N "
                              "-m rnnlm train ...\n(the same options; --bs must be a multiple of N).")
    add_data_options(p)
    add_model_options(p)
    add_train_options(p)
    add_threads_option(p)
    p.add_argument("--out", metavar="DIR", default=None, help="run folder (default: runs/<data>-<time>)")
    add_regularisation_options(p)
    add_schedule_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("lr-find", help="find a learning rate to train with", formatter_class=Formatter,
                       description="Train a fresh model for a few batches while the learning rate grows "
                                   "exponentially; stop when the loss diverges; print a suggested rate. "
                                   "Writes nothing unless --plot is given.")
    add_data_options(p)
    add_model_options(p)
    add_regularisation_options(p)
    add_train_options(p)
    g = p.add_argument_group("sweep")
    g.add_argument("--start-lr", type=float, default=1e-7, help="rate of the first batch")
    g.add_argument("--end-lr", type=float, default=10.0, help="rate of the last batch")
    g.add_argument("--batches", type=int, default=100, help="batches in the sweep (at most)")
    g.add_argument("--plot", metavar="FILE", default=None, help="write a PNG of loss against rate")
    add_threads_option(p)
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("generate", help="write text with a trained model", formatter_class=Formatter,
                       description="Sample text from a run, streaming tokens as they come.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("-n", type=int, default=200, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="below 1: safer text, above 1: wilder")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample among the tokens holding this probability mass")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--seed", type=int, default=None, help="same seed, same text")
    p.add_argument("--samples", type=int, default=1, help="independent samples, generated as one batch")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when present")
    add_threads_option(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="measure a trained model", formatter_class=Formatter,
                       description="Loss (nats/token), perplexity, bits per token, next-token accuracy.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("data", nargs="?", default=None, metavar="DATA",
                   help="text file, folder or built-in (default: the run's validation split)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when present")
    add_encoding_options(p, None, None)
    add_threads_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("prepare", help="tokenize a large corpus to disk", formatter_class=Formatter,
                       description="Tokenize a corpus in bounded memory into a folder of token ids "
                                   "(the smallest unsigned type that fits) and vocab.json; "
                                   "`rnnlm train DIR` memory-maps it. The vocab and the split are "
                                   "fixed here.")
    add_data_options(p, prepared=False)
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write (must be new or empty)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("datasets", help="list the built-in datasets", formatter_class=Formatter)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("lesson", help="run the models of the lessons by name", formatter_class=Formatter,
                       description="Train the models of the lessons (Nietzsche, human numbers, PyTorch "
                       "basics) with their recipes; prints each result beside the lesson's own number.")
    p.add_argument("names", nargs="*", metavar="NAME", help="lessons to run (any letter case)")
    p.add_argument("--list", action="store_true", help="list every lesson with its data, recipe and number")
    p.add_argument("--all", action="store_true", help="run every lesson")
    p.add_argument("--epochs-scale", type=float, default=1.0, metavar="F",
                   help="shorten the Nietzsche recipes to F times their epochs (human numbers and the "
                   "PyTorch basics always run in full: seconds)")
    p.add_argument("--nietzsche", metavar="FILE", default=None,
                   help="the Nietzsche text (default: the built-in download)")
    p.add_argument("--seed", type=int, default=1234, help="fixes initialisation, data order and samples")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when present")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="results folder (default: runs/lessons-<time>)")
    add_threads_option(p)
    p.set_defaults(func=cmd_lesson)
    return parser


def one_line(text: str) -> str:
    """``text`` with control characters escaped: a file name may hold a newline or a terminal
    escape sequence, and an error stays one harmless line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def for_terminal(text: str) -> str:
    """Generated text as it goes to stdout: on a terminal, control characters other than newline
    and tab are shown escaped, since a model (trained on hostile text, or from a stranger) can
    write an escape sequence the terminal would obey. Piped or redirected, text stays as it is."""
    if not sys.stdout.isatty():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" and c not in "\n\t" else c for c in text)


def out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; every failure becomes one line on stderr. Exit status 2: a problem with
    the input, the options, the machine (memory, disk); 130: interrupted (Ctrl-C, or SIGTERM
    during training); 1: a bug in rnnlm (set RNNLM_DEBUG=1 for its traceback). Under torchrun
    every process runs this, and rank 0 speaks for them all: the others keep quiet about the
    errors they share with it."""
    args = build_parser().parse_args(argv)

    def fail(message: str, status: int = EXIT_USAGE, rank: int = 0) -> int:
        where = f" (rank {rank})" if rank else ""
        print(f"rnnlm {args.command}{where}: error: {one_line(message)}", file=sys.stderr)
        return status

    def quiet(status: int) -> int:
        """Leave without a word; rank 0 says why. Not at once: torchrun stops every process when
        one ends, and rank 0 may not have said it yet."""
        time.sleep(QUIET_EXIT_DELAY)
        return status

    try:
        rank, world = launched_rank(), launched_world_size()
    except RnnlmError as e:
        return fail(str(e))
    try:
        if world > 1 and args.command != "train":
            raise RnnlmError(f"only rnnlm train runs in several processes; run rnnlm {args.command} without torchrun")
        if getattr(args, "threads", None) is not None:
            from rnnlm.device import set_threads

            set_threads(args.threads)
        args.func(args)
    except RnnlmError as e:
        return fail(str(e)) if rank == 0 else quiet(EXIT_USAGE)
    except KeyboardInterrupt as e:
        if rank:
            return quiet(130)
        print(f"\nrnnlm {args.command}: {one_line(str(e)) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        if os.environ.get("RNNLM_DEBUG"):
            raise
        if world > 1 and lost_a_peer(e):
            reason = str(e).splitlines()[0][:200]
            message = f"another process of this torchrun job stopped, so this one cannot go on ({reason})"
            return fail(message) if rank == 0 else quiet(EXIT_USAGE)
        if out_of_memory(e):
            return fail("out of memory; try a smaller --bs, --bptt, --hidden, --layers, --samples or corpus", rank=rank)
        if isinstance(e, OSError):
            where = f"{e.filename}: " if e.filename else ""
            return fail(f"{where}{e.strerror or e}", rank=rank)
        reason = str(e).splitlines()[0][:300] if str(e) else ""
        return fail(f"internal error ({type(e).__name__}: {reason}); this is a bug in rnnlm, please report it "
                    "(RNNLM_DEBUG=1 shows the traceback)", EXIT_BUG, rank)
    return 0


def entry() -> None:
    """The ``rnnlm`` command: run ``main`` and exit with its status. A process under torchrun
    leaves through ``os._exit`` once its output is flushed (every file it wrote is closed by
    then): torch 2.13's gloo backend can abort a process at interpreter exit while its threads
    still hold tensors (pytorch/pytorch#179291; one exit in five to ten here), which torchrun
    would report as a failure of the whole job."""
    status = main()
    if os.environ.get("WORLD_SIZE", "1") != "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
