"""``rnnlm lr-find``: sweep the learning rate on a fresh model and suggest one."""

from __future__ import annotations

import argparse

from rnnlm.cli.options import (
    add_command,
    add_data_options,
    add_model_options,
    add_regularisation_options,
    add_threads_option,
    add_train_options,
    config_from_args,
)
from rnnlm.errors import RnnlmError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "lr-find", help="find a learning rate to train with",
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
    p.set_defaults(func=run, fields={"start": "start_lr", "end": "end_lr"})


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from rnnlm.atomic import check_writable
    from rnnlm.train.lr_find import find_lr
    from rnnlm.train.plots import has_matplotlib

    if args.plot:
        check_writable(args.plot, "plot")
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
