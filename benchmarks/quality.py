"""Quality per minute: Nietzsche validation bits/char after the same wall-clock budget, rnnlm's
recommended character recipe against the lessons' 2-layer LSTM recipe, same data and split
(lower-cased, characters seen fewer than 3 times dropped, last 20% for validation, as the
lessons do).

Each recipe trains for the budget (epoch-end validation included; training stops at the first
batch past it and validates once more); the table shows the validation bits/char of its best
epoch, which is what rnnlm keeps as model.safetensors. The lessons' recipe runs its cosine
restarts for as many epochs as fit. The recommended one uses a one-cycle schedule, which must
know its length: a short probe (counted in its budget) measures the speed and sets the number
of epochs that fit.

The lessons' row is a close copy on RecurrentLM, not the lesson itself: the lessons' model
(rnnlm.lessons, CharSeqStatefulLSTM) has dropout 0.5 between its LSTM layers only, where
RecurrentLM also drops out before the output layer; the lessons fit 2 epochs at a constant
1e-2 before their cosine restarts; and their weight decay was L2 inside Adam, rnnlm's is
decoupled (AdamW).

On a machine shared with other work, --cpu --threads 1 counts CPU time of the training loop
instead (validation not counted), as benchmarks/regularisation.py does: a recipe that ran in a
busy spell then gets as much computing as one that ran in a quiet one.

    python benchmarks/quality.py [--minutes 10] [--cpu --threads 1] [--data ../shared/data/nietzsche.txt]
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, machine, set_threads, table  # noqa: E402
from regularisation import CpuBudget  # noqa: E402

from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnlm.data.batching import StreamBatches  # noqa: E402
from rnnlm.data.textdata import build_text_data  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402
from rnnlm.train.learner import Learner  # noqa: E402
from rnnlm.train.run import train  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"
LESSON_DATA = dict(lower=True, min_freq=3, valid_frac=0.2)

LESSONS = RunConfig(  # 001_...txt: CharSeqStatefulLSTM, LayerOptimizer(Adam, 1e-2, wds=1e-5), CosAnneal
    DataConfig(**LESSON_DATA),
    ModelConfig(cell="lstm", layers=2, emb=42, hidden=512, dropout=0.5),
    TrainConfig(bs=64, bptt=8, epochs=1000, lr=1e-2, wd=1e-5, schedule="sgdr", cycle_len=1, cycle_mult=2,
                clip=0.0, device="cpu"),
)
# Provisional: issue 4 (regularisation, lr finder) may change what rnnlm recommends.
RECOMMENDED = RunConfig(
    DataConfig(**LESSON_DATA),
    ModelConfig(cell="lstm", layers=2, emb=64, hidden=512, dropout=0.2),
    TrainConfig(bs=64, bptt=16, epochs=1, lr=3e-3, schedule="onecycle", clip=1.0, device="cpu"),
)


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


def run(name: str, config: RunConfig, minutes: float, out: Path, cpu: bool) -> list:
    """Train ``config`` for the budget; its table row. ``cpu``: the budget is CPU time of the
    training loop (validation not counted, as benchmarks/regularisation.py), else wall-clock
    time (validation counted)."""
    clock = time.process_time if cpu else time.perf_counter
    start, wall_start = clock(), time.perf_counter()
    if config.train.schedule == "onecycle":
        epochs = epochs_that_fit(config, 60 * minutes - (clock() - start) - 5, clock, not cpu)
        config = replace(config, train=replace(config.train, epochs=epochs))
    left = max(60 * minutes - (clock() - start), 0.06)
    budget = CpuBudget(left) if cpu else None
    if not cpu:
        config = replace(config, train=replace(config.train, max_minutes=left / 60))
    _, learner, _ = train(config, out, callbacks=[budget] if budget else None, log=io.StringIO(), progress=False)
    spent = (clock() - start) if not cpu else (60 * minutes - left + budget.spent)
    best = min(learner.history, key=lambda r: r["valid_loss"])
    m, t = config.model, config.train
    recipe = (f"{m.cell} {m.layers}x{m.hidden} emb {m.emb} drop {m.dropout}, bs {t.bs} bptt {t.bptt}, "
              f"{t.schedule} lr {t.lr:g}" + (f" wd {t.wd:g}" if t.wd else "") + (f" clip {t.clip:g}" if t.clip else ""))
    epochs = learner.tokens_seen / learner.train_data.tokens
    print(f"  {name}: best valid {best['bpc']:.4f} bits/char ({best['valid_loss']:.4f} nats) at epoch "
          f"{best['epoch']}, {learner.tokens_seen:,} tokens, {time.perf_counter() - wall_start:.0f} s wall",
          file=sys.stderr, flush=True)
    return [name, recipe, f"{epochs:.2f}", f"{learner.tokens_seen:,}", f"{spent / 60:.1f}",
            f"{best['valid_loss']:.4f}", f"{best['bpc']:.4f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each recipe")
    parser.add_argument("--data", default=str(SHARED), help="the Nietzsche text (default: ../shared/data)")
    parser.add_argument("--cpu", action="store_true",
                        help="count the budget in CPU time of the training loop instead of wall-clock time: "
                             "fair on a machine shared with other work (use with --threads 1)")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.data != "nietzsche" and not Path(args.data).is_file():
        raise SystemExit(f"{args.data}: not found; pass --data PATH (or 'nietzsche' to download it)")
    clock = "CPU" if args.cpu else "wall-clock"
    print(f"# Quality per {args.minutes:g} {clock} minutes, Nietzsche\n\n{machine()}\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnlm-quality-") as tmp:
        for name, config in (("rnnlm recommended", RECOMMENDED), ("lessons' 2-layer LSTM", LESSONS)):
            config = replace(config, data=replace(config.data, source=args.data))
            rows.append(run(name, config, args.minutes, Path(tmp) / name.split()[0], args.cpu))
    print(table(["recipe", "settings", "epochs", "tokens", f"{clock} minutes", "valid nats/char",
                 "valid bits/char"], rows))


if __name__ == "__main__":
    main()
