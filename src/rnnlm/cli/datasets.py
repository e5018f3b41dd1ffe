"""``rnnlm datasets``: the built-in datasets and where they live."""

from __future__ import annotations

import argparse

from rnnlm.cli.options import add_command
from rnnlm.data.datasets import DATASETS, cache_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "datasets", help="list the built-in datasets")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    for d in DATASETS.values():
        where = "built in" if d.builtin else f"downloaded to {cache_dir() / (d.name + '.txt')}"
        print(f"{d.name:<16} {d.level:<5} {d.description}; {where}")
