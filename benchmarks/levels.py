"""Levels side by side: characters, BPE subwords (512 and 2048 tokens) and words on Nietzsche
(mixed case, as the text is), the same model and recipe under the same budget, scored in bits
per character of the same validation text (the last 20% of its characters; at word level the
cut moves on to the next whitespace).

Bits per character are the split's total nats over its characters, in bits (docs/levels.md),
so the four rows compare on one number although a token is one character, about three, or a
word. Each level trains rnnlm's recommended recipe (benchmarks/quality.py: a 2-layer LSTM 512,
one-cycle, epochs set by a speed probe counted in the budget) and the table shows its best
epoch, the weights rnnlm keeps.

The levels run at once, one process each (``--jobs``), each with one torch thread and a budget
of CPU time (``--cpu``, as quality.py: validation not counted), which stays fair on a machine
shared with other work; without ``--cpu`` the budget is wall-clock time.

    python benchmarks/levels.py [--minutes 5] [--cpu] [--jobs 4] [--data ../shared/data/nietzsche.txt]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402
from regularisation import CpuBudget  # noqa: E402

from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnlm.data.batching import StreamBatches  # noqa: E402
from rnnlm.data.textdata import build_text_data  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402
from rnnlm.train.learner import Learner  # noqa: E402
from rnnlm.train.run import train  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"
RECIPE = RunConfig(  # the recipe this comparison was made with (the README's hand recipe of the time)
    DataConfig(),
    ModelConfig(cell="lstm", layers=2, emb=64, hidden=512, dropout=0.2),
    TrainConfig(bs=64, bptt=16, epochs=1, lr=3e-3, schedule="onecycle", clip=1.0, device="cpu"),
)
LEVELS = {  # name: data settings
    "char": dict(level="char"),
    "bpe 512": dict(level="bpe", vocab_size=512),
    "bpe 2048": dict(level="bpe", vocab_size=2048),
    "word": dict(level="word"),
}


def epochs_that_fit(config: RunConfig, seconds: float, clock, count_validation: bool, probe_batches: int = 6) -> int:
    """Time a few training batches of a throwaway model of the recipe; whole epochs that fit."""
    data = build_text_data(config.data)
    t = config.train
    torch.manual_seed(t.seed)
    model = RecurrentLM(len(data.vocab), config.model)
    train_batches = StreamBatches(data.train_ids, t.bs, t.bptt)
    warm_up = StreamBatches(data.train_ids[: 2 * t.bs * t.bptt + 1], t.bs, t.bptt)
    probe = StreamBatches(data.train_ids[: probe_batches * t.bs * t.bptt + 1], t.bs, t.bptt)
    Learner(model, warm_up, None, lr=t.lr, clip=t.clip).fit(1, t.lr)
    learner = Learner(model, probe, None, lr=t.lr, clip=t.clip)
    start = clock()
    learner.fit(1, t.lr)
    per_token = (clock() - start) / probe.tokens
    valid_cost = len(data.valid_ids) / 3 if count_validation else 0  # forward only: about a third
    epoch_s = per_token * (train_batches.tokens + valid_cost)
    return max(1, math.floor(seconds / epoch_s))


def run_level(name: str, data: str, minutes: float, cpu: bool, out: Path) -> dict:
    """Train the recipe at level ``name`` for the budget; what the table shows."""
    config = replace(RECIPE, data=DataConfig(source=data, valid_frac=0.2, **LEVELS[name]))
    clock = time.process_time if cpu else time.perf_counter
    start, wall_start = clock(), time.perf_counter()
    epochs = epochs_that_fit(config, 60 * minutes - 5, clock, not cpu)
    config = replace(config, train=replace(config.train, epochs=epochs))
    left = max(60 * minutes - (clock() - start), 0.06)
    budget = CpuBudget(left) if cpu else None
    if not cpu:
        config = replace(config, train=replace(config.train, max_minutes=left / 60))
    trained = train(config, out, callbacks=[budget] if budget else None, log=sys.stderr, progress=False)
    learner, text = trained.learner, trained.data
    spent = (60 * minutes - left + budget.spent) if cpu else clock() - start
    best = min(learner.history, key=lambda r: r["valid_loss"])
    train_chars_per_token = text.train_characters / len(text.train_ids)
    return {
        "level": name, "vocab": len(text.vocab), "params": sum(p.numel() for p in learner.model.parameters()),
        "valid_chars_per_token": text.valid_characters / len(text.valid_ids), "epochs": epochs,
        "tokens": learner.tokens_seen, "characters": round(learner.tokens_seen * train_chars_per_token),
        "minutes": spent / 60, "wall_minutes": (time.perf_counter() - wall_start) / 60, "best_epoch": best["epoch"],
        "valid_loss": best["valid_loss"], "bits_per_token": best["bits_per_token"], "bpc": best["bpc"],
        "valid_characters": text.valid_characters,
    }


def child(name: str, args: argparse.Namespace) -> dict:
    """``run_level`` in a process of its own (one torch thread), its row read back as JSON."""
    command = [sys.executable, __file__, "--only", name, "--minutes", str(args.minutes), "--data", args.data]
    done = subprocess.run(command + (["--cpu"] if args.cpu else []), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    print(f"  {name}: done\n{done.stderr}", file=sys.stderr, flush=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="budget of each level")
    parser.add_argument("--data", default=str(SHARED), help="the Nietzsche text (default: ../shared/data)")
    parser.add_argument("--cpu", action="store_true", help="count CPU time of the training loop, not wall-clock")
    parser.add_argument("--jobs", type=int, default=len(LEVELS), help="levels trained at once")
    parser.add_argument("--only", choices=LEVELS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data}: not found; pass --data PATH")
    torch.set_num_threads(1)
    if args.only:
        with tempfile.TemporaryDirectory(prefix="rnnlm-levels-") as tmp:
            row = run_level(args.only, args.data, args.minutes, args.cpu, Path(tmp) / "run")
        print(json.dumps(row))
        return
    clock = "CPU" if args.cpu else "wall-clock"
    print(f"# Levels, {args.minutes:g} {clock} minutes each, Nietzsche (mixed case)\n\n{machine()}\n")
    valid = build_text_data(DataConfig(source=args.data, valid_frac=0.2, level="char"))
    print(f"validation text: the last {valid.valid_characters:,} characters\n")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda name: child(name, args), LEVELS))
    print(table(
        ["level", "vocab", "params", "chars/token", "epochs", "tokens seen", "chars seen", f"{clock} min",
         "best epoch", "valid nats/token", "bits/token", "bits/char"],
        [[r["level"], f"{r['vocab']:,}", f"{r['params'] / 1e6:.2f}M", f"{r['valid_chars_per_token']:.2f}", r["epochs"],
          f"{r['tokens']:,}", f"{r['characters']:,}", f"{r['minutes']:.1f}", r["best_epoch"],
          f"{r['valid_loss']:.4f}", f"{r['bits_per_token']:.4f}", f"{r['bpc']:.4f}"] for r in rows]))
    best = min(rows, key=lambda r: r["bpc"] if math.isfinite(r["bpc"]) else math.inf)
    print(f"\nbest: {best['level']} at {best['bpc']:.4f} bits/char")


if __name__ == "__main__":
    main()
