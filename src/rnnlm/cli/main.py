"""The ``rnnlm`` command: the parser of every subcommand, and the one place where failures
become one line on stderr and an exit status.

Each subcommand lives in its own module (parsing and printing only, over the API) with
``add_parser(sub)`` and ``run(args)``; nothing heavy (torch, numpy) is imported until a
command's ``run`` needs it, so ``rnnlm --help`` answers at once."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Sequence

from rnnlm import __version__
from rnnlm.cli import datasets, evaluate, export, generate, lesson, lr_find, novelty, prepare, score, serve, train
from rnnlm.cli.options import EXIT_BUG, EXIT_USAGE, Formatter, Parser
from rnnlm.cli.output import command_parser, error_text, flag_speller, one_line, typed_dests
from rnnlm.errors import RnnlmError
from rnnlm.launch import launched_rank, launched_world_size

COMMANDS = (train, lr_find, generate, evaluate, score, novelty, prepare, datasets, lesson, serve, export)
QUIET_EXIT_DELAY = 1.0  # seconds the ranks other than 0 wait before they fail (see main)


def build_parser() -> Parser:
    parser = Parser(prog="rnnlm", description="Train, measure and sample recurrent language models.",
                    formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def out_of_memory(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; every failure becomes one line on stderr. Exit status 2: a problem with
    the input, the options, the machine (memory, disk); 130: interrupted (Ctrl-C, or SIGTERM
    during training); 1: a bug in rnnlm (set RNNLM_DEBUG=1 for its traceback). Under torchrun
    every process runs this, and rank 0 speaks for them all: the others keep quiet about the
    errors they share with it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.typed = typed_dests(parser, args.command, argv)
    report = Report(args.command, flag_speller(command_parser(parser, args.command), getattr(args, "fields", {})))
    try:
        rank, world = launched_rank(), launched_world_size()
    except RnnlmError as e:
        return report.fail(e)
    report.rank = rank
    try:
        if world > 1 and args.command != "train":
            raise RnnlmError(f"only rnnlm train runs in several processes; run rnnlm {args.command} without torchrun")
        if getattr(args, "threads", None) is not None:
            from rnnlm.device import set_threads

            set_threads(args.threads)
        args.func(args)
    except RnnlmError as e:
        return report.fail(e) if rank == 0 else report.quiet(EXIT_USAGE)
    except KeyboardInterrupt as e:
        if rank:
            return report.quiet(130)
        print(f"\nrnnlm {args.command}: {one_line(str(e)) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        if os.environ.get("RNNLM_DEBUG"):
            raise
        return report.unexpected(e, world)
    return 0


class Report:
    """How a command's failure is told: one line on stderr, settings spelled as its options."""

    def __init__(self, command: str, spell: Callable[[str], str]):
        self.command, self.spell, self.rank = command, spell, 0

    def fail(self, error: RnnlmError | str, status: int = EXIT_USAGE, rank: int = 0) -> int:
        message = error if isinstance(error, str) else error_text(error, self.spell)
        where = f" (rank {rank})" if rank else ""
        print(f"rnnlm {self.command}{where}: error: {one_line(message)}", file=sys.stderr)
        return status

    def quiet(self, status: int) -> int:
        """Leave without a word; rank 0 says why. Not at once: torchrun stops every process when
        one ends, and rank 0 may not have said it yet."""
        time.sleep(QUIET_EXIT_DELAY)
        return status

    def unexpected(self, e: Exception, world: int) -> int:
        """An exception that is not the user's mistake: a lost torchrun peer, the machine's
        memory or disk, or a bug."""
        rank = self.rank
        if world > 1:
            from rnnlm.distributed import lost_a_peer

            if lost_a_peer(e):
                reason = str(e).splitlines()[0][:200]
                message = f"another process of this torchrun job stopped, so this one cannot go on ({reason})"
                return self.fail(message) if rank == 0 else self.quiet(EXIT_USAGE)
        if out_of_memory(e):
            return self.fail("out of memory; try a smaller --bs, --bptt, --hidden, --layers, --samples or corpus",
                             rank=rank)
        if isinstance(e, OSError):
            where = f"{e.filename}: " if e.filename else ""
            return self.fail(f"{where}{e.strerror or e}", rank=rank)
        reason = str(e).splitlines()[0][:300] if str(e) else ""
        return self.fail(f"internal error ({type(e).__name__}: {reason}); this is a bug in rnnlm, please report it "
                         "(RNNLM_DEBUG=1 shows the traceback)", EXIT_BUG, rank)


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
