"""AWD-LSTM regularisation on Nietzsche: validation bits/char with and without each option, every
configuration trained for the same time budget, one after the other in one run.

Data as in the lessons: lower-cased, characters seen fewer than 3 times dropped, the last 20%
for validation. Model: a 2-layer LSTM (emb 64, hidden 256), 64 streams of 32 characters, Adam
at a constant 3e-3 with gradient clipping 1, so the only difference between rows is the
regularisation. Each configuration trains until the budget is spent (the epoch under way stops
at the first batch past it and is validated); the table shows the best epoch's validation
bits/char (what rnnlm keeps as model.safetensors) and the last one's.

The budget is CPU time of the training loop (validation not counted), with one torch thread:
on a quiet machine that is the wall-clock time, and on a machine shared with other work it
stays fair, where wall-clock time would give whichever row ran in a quiet spell more epochs.

    python benchmarks/regularisation.py [--minutes 4] [--threads 1] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.train.callbacks import Callback
from rnnlm.train.run import train

NIETZSCHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"

CONFIGS = {
    "none": {},
    "dropout 0.3": {"dropout": 0.3},
    "locked dropout 0.3": {"dropout": 0.3, "locked_dropout": True},
    "weight dropout 0.3": {"weight_dropout": 0.3},
    "embedding dropout 0.1": {"emb_dropout": 0.1},
    "AR 2, TAR 1": {"ar": 2.0, "tar": 1.0},
    "AdamW wd 0.1": {"wd": 0.1},
    "all of them": {"dropout": 0.3, "locked_dropout": True, "weight_dropout": 0.3, "emb_dropout": 0.1,
                    "ar": 2.0, "tar": 1.0, "wd": 0.1},
}


class CpuBudget(Callback):
    """Stops training, as --max-minutes would, once the training loop (validation not counted)
    has used ``seconds`` of this process's CPU time."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.spent = self.start = self.batch_end = 0.0

    def used(self) -> float:
        return self.spent + time.process_time() - self.start

    def on_epoch_begin(self, learner) -> None:
        self.start = time.process_time()

    def on_batch_end(self, learner, loss) -> None:
        if self.used() > self.seconds:
            learner.deadline = -math.inf  # the learner stops after this batch and validates
        self.batch_end = self.used()

    def on_epoch_end(self, learner, row) -> None:
        self.spent = self.batch_end


def run_config(data: Path, options: dict) -> RunConfig:
    model_keys = {f.name for f in fields(ModelConfig)}
    model = {k: v for k, v in options.items() if k in model_keys}
    extra = {k: v for k, v in options.items() if k not in model_keys}
    return RunConfig(
        DataConfig(str(data), lower=True, min_freq=3),
        ModelConfig(**{"cell": "lstm", "layers": 2, "emb": 64, "hidden": 256, "dropout": 0.0, **model}),
        TrainConfig(bs=64, bptt=32, epochs=1000, lr=3e-3, schedule="constant", clip=1.0, seed=0,
                    device="cpu", **extra),
    )


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="CPU minutes of training for each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--data", type=Path, default=NIETZSCHE)
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"{args.data}: not found; pass --data nietzsche.txt", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread; {args.minutes:g} CPU minutes of training each; "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            start = time.monotonic()
            budget = CpuBudget(60 * args.minutes)
            learner = train(run_config(args.data, CONFIGS[name]), Path(tmp) / name.replace(" ", "-"),
                            callbacks=[budget], log=io.StringIO(), progress=False).learner
            best = min(learner.history, key=lambda r: r["valid_loss"])
            last = learner.history[-1]
            speed = learner.tokens_seen / budget.spent
            rows.append([name, f"{learner.step / learner.batches_per_epoch:.1f}", f"{speed:,.0f}",
                         f"{last['train_loss']:.4f}", f"{best['bpc']:.4f}", best["epoch"], f"{last['bpc']:.4f}"])
            print(f"{name}: best valid {best['bpc']:.4f} bits/char at epoch {best['epoch']}; "
                  f"{time.monotonic() - start:.0f} s of wall-clock time", flush=True)
    print()
    headers = ["regularisation", "epochs", "tokens/CPU s", "last train loss",
               "best valid bpc", "at epoch", "last valid bpc"]
    print(table(headers, rows))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (2 cores shared with other work)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
