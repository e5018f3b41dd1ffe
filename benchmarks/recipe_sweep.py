"""The sweep behind the recipe table (rnnlm.train.recipe): candidate recipes trained one after
another on one corpus under the same --budget, through the same planned path as
``rnnlm train DATA --budget ...`` with every recipe setting given.

Each row: the candidate, what its probe measured, the steps its plan held and trained, and the
best validation loss (what rnnlm keeps). ``reach`` is the key of the recipe table: how many
epochs of the level's reference recipe (rnnlm.train.recipe.REFERENCES, probed once at the start) the
budget buys on this machine. Results are also appended, one JSON object a line, to --results.

    python benchmarks/recipe_sweep.py --data nietzsche.txt --lower --min-freq 3 --minutes 10 \\
        --cpu --threads 1 --only r512,w768 --results sweep.jsonl

--cpu counts the budget in CPU time of this process (use with --threads 1), so that candidates
that ran while other work shared the machine get as much computing as the others.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, machine, set_threads, table  # noqa: E402

from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnlm.data.textdata import build_text_data  # noqa: E402
from rnnlm.distributed import Distributed  # noqa: E402
from rnnlm.train.probe import probe_speed  # noqa: E402
from rnnlm.train.recipe import REFERENCE, REFERENCES, WORD_REFERENCE, Recipe  # noqa: E402
from rnnlm.train.run import train  # noqa: E402
from rnnlm.train.setup import resolve_config  # noqa: E402

CANDIDATES = {
    # character level
    "s512": Recipe("lstm", 1, 512, 64, 0.2, 64, 16, 3e-3),
    "r512": REFERENCE,
    "r512d3": Recipe("lstm", 2, 512, 64, 0.3, 64, 16, 3e-3),
    "r512d5": Recipe("lstm", 2, 512, 64, 0.5, 64, 16, 3e-3),
    "r512d1": Recipe("lstm", 2, 512, 64, 0.1, 64, 16, 3e-3),
    "r512d0": Recipe("lstm", 2, 512, 64, 0.0, 64, 16, 3e-3),
    "r512b32": Recipe("lstm", 2, 512, 64, 0.2, 64, 32, 4e-3),
    "t512": Recipe("lstm", 3, 512, 64, 0.25, 64, 16, 3e-3),
    "w768": Recipe("lstm", 2, 768, 64, 0.25, 64, 16, 2.5e-3),
    "w768d1": Recipe("lstm", 2, 768, 64, 0.1, 64, 16, 2.5e-3),
    "w768d4": Recipe("lstm", 2, 768, 64, 0.4, 64, 16, 2.5e-3),
    "w1024": Recipe("lstm", 2, 1024, 64, 0.3, 64, 16, 2e-3),
    "w1024d1": Recipe("lstm", 2, 1024, 64, 0.1, 64, 16, 2e-3),
    "g512": Recipe("gru", 2, 512, 64, 0.2, 64, 16, 3e-3),
    # word level
    "word512": WORD_REFERENCE,
    "word256": Recipe("lstm", 2, 256, 256, 0.3, 64, 32, 3e-3),
    "word512d5": Recipe("lstm", 2, 512, 256, 0.5, 64, 32, 3e-3),
}


def run_config(args: argparse.Namespace, recipe: Recipe) -> RunConfig:
    return RunConfig(
        DataConfig(args.data, level=args.level, lower=args.lower, min_freq=args.min_freq, valid_frac=args.valid_frac),
        ModelConfig(cell=recipe.cell, layers=recipe.layers, emb=recipe.emb, hidden=recipe.hidden,
                    dropout=recipe.dropout),
        TrainConfig(bs=recipe.bs, bptt=recipe.bptt, lr=recipe.lr, wd=recipe.wd, clip=1.0, seed=0, device="cpu",
                    budget=60 * args.minutes),
    )


def reference_speed(args: argparse.Namespace, clock) -> tuple[float, int]:
    """Tokens a second of the reference recipe on this corpus (the table's yardstick), and the
    training split's size."""
    config = resolve_config(run_config(args, REFERENCE))
    data = build_text_data(config.data)
    config = resolve_config(run_config(args, REFERENCES[data.tokenizer.level]))
    speed = probe_speed(config, data, torch.device("cpu"), Distributed(), 3.0, clock)
    return speed.tokens_per_s, len(data.train_ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a text file")
    parser.add_argument("--level", choices=("char", "word"), default=None)
    parser.add_argument("--lower", action="store_true")
    parser.add_argument("--min-freq", type=int, default=1)
    parser.add_argument("--valid-frac", type=float, default=0.2)
    parser.add_argument("--minutes", type=float, default=10.0, help="the budget of each candidate")
    parser.add_argument("--cpu", action="store_true", help="count the budget in CPU time of this process")
    parser.add_argument("--only", default="r512", help=f"comma-separated candidates of: {', '.join(CANDIDATES)}")
    parser.add_argument("--results", type=Path, default=None, help="append each result as a JSON line here")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    names = args.only.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates: {', '.join(unknown)}")
    clock = time.process_time if args.cpu else time.monotonic
    ref_tps, tokens = reference_speed(args, clock)
    reach = 60 * args.minutes * ref_tps / tokens
    print(f"# Recipe sweep: {Path(args.data).name}, {tokens:,} training tokens, {args.minutes:g} "
          f"{'CPU' if args.cpu else 'wall-clock'} minutes each\n\n{machine()}; load average at start "
          f"{os.getloadavg()[0]:.1f}; reference recipe {ref_tps:,.0f} tokens/s, reach {reach:.2f} epochs\n",
          flush=True)
    rows = []
    for name in names:
        recipe = CANDIDATES[name]
        wall = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="rnnlm-sweep-") as tmp:
            trained = train(run_config(args, recipe), Path(tmp) / "run", log=io.StringIO(), progress=False,
                            clock=clock)
        learner, data = trained.learner, trained.data
        plan = learner.pacer.plan
        best = min(learner.history, key=lambda r: r["valid_loss"])
        result = {
            "data": Path(args.data).name, "tokens": tokens, "minutes": args.minutes, "cpu": args.cpu,
            "threads": torch.get_num_threads(), "reach": reach, "reference_tokens_per_s": ref_tps,
            "candidate": name, "recipe": recipe.describe(), "tokens_per_s": plan.tokens_per_s,
            "planned_steps": plan.steps, "steps": learner.step, "epochs": learner.tokens_seen / data.train_ids.size,
            "best_valid": best["valid_loss"], "best_bpc": best["bpc"], "last_valid": learner.history[-1]["valid_loss"],
            "last_lr": learner.lr, "spent": learner.pacer.spent(), "wall": time.monotonic() - wall,
            "load": os.getloadavg()[0],
        }
        if args.results:
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
        rows.append([name, recipe.describe(), f"{plan.tokens_per_s:,.0f}", f"{learner.step:,} / {plan.steps:,}",
                     f"{result['epochs']:.2f}", f"{best['valid_loss']:.4f}", f"{best['bpc']:.4f}",
                     f"{result['last_lr']:.1e}"])
        print(f"  {name}: best valid {best['valid_loss']:.4f} nats ({best['bpc']:.4f} bits), "
              f"{result['epochs']:.2f} epochs, {result['wall']:.0f} s wall", file=sys.stderr, flush=True)
    print(table(["candidate", "recipe", "probe tokens/s", "steps trained / planned", "epochs", "best valid nats",
                 "bits", "last lr"], rows))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; reach = {reach:.2f} reference epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
