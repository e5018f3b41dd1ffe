"""``rnnlm lesson``: train the models of the lessons with their recipes."""

from __future__ import annotations

import argparse

from rnnlm.cli.options import add_command, add_device_option, add_threads_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "lesson", help="run the models of the lessons by name",
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
    add_device_option(p)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="results folder (default: runs/lessons-<time>)")
    add_threads_option(p)
    p.set_defaults(func=run, fields={"scale": "epochs_scale", "run_all": "all"})


def run(args: argparse.Namespace) -> None:
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
