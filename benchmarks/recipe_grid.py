"""``--budget``'s rules against a grid of hand recipes, and a leave-one-corpus-out check of the rules'
two thresholds (issue 22).

For each text, one after the other, each as a user runs it (``benchmarks/recipe_rule.py``'s way:
``rnnlm train TEXT --budget T``, then ``rnnlm evaluate RUN --streams 1`` on the whole held-out
split):

    rules       no option: the size, epochs and dropouts the rules choose
    g1x512d1    --layers 1 --hidden 512 --dropout 0.1
    g2x512d2    --layers 2 --hidden 512 --dropout 0.2
    g2x512d3w   --layers 2 --hidden 512 --dropout 0.3 --weight-dropout 0.3
    g2x768d2    --layers 2 --hidden 768 --dropout 0.2
    g2x768d3w   --layers 2 --hidden 768 --dropout 0.3 --weight-dropout 0.3

The grid is the rules' space of choices: the ladder's three sizes, each with a light dropout and
(for the two-layer models) the dropout and weight dropout of many epochs. So a rule of the
rules' form (the largest size that trains ``m`` epochs or more, in ``s`` optimiser steps or
more; the heavy dropout from ``w`` epochs, counted as the rules count them: fewer for a model
smaller than its corpus) picks one of the grid's runs on each text, and its loss there is known
without training it again. The check fits ``m``, ``w`` and ``s`` on every text but one (the
least loss above each text's best grid run, summed) and reads what the fitted rule picks on the
text left out, against that text's best grid run. The rules today are ``m`` 2.5, ``w`` 6, ``s``
1,000.

    taskset -c 0 python benchmarks/recipe_grid.py --minutes 3 --threads 1 --keep DIR TEXT ...
    python benchmarks/recipe_grid.py --analyse DIR [DIR ...]   # the tables again, from the runs kept
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402
from recipe_rule import measure  # noqa: E402

GRID = {
    "g1x512d1": "--layers 1 --hidden 512 --dropout 0.1",
    "g2x512d2": "--layers 2 --hidden 512 --dropout 0.2",
    "g2x512d3w": "--layers 2 --hidden 512 --dropout 0.3 --weight-dropout 0.3",
    "g2x768d2": "--layers 2 --hidden 768 --dropout 0.2",
    "g2x768d3w": "--layers 2 --hidden 768 --dropout 0.3 --weight-dropout 0.3",
}
SIZES = ("1x512", "2x512", "2x768")  # the ladder, smallest first
MIN_EPOCHS = (1.5, 2.0, 2.5, 3.0, 4.0, 6.0)  # the size rule's thresholds tried
HEAVY_FROM = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0)  # the heavy dropout's thresholds tried
MIN_STEPS = (0, 1000, 1500, 2000, 3000)  # the size rule's steps tried
RULES_NOW = (2.5, 6.0, 1000)  # src/rnnlm/train/recipe.py: MIN_EPOCHS, weight dropout from 6 epochs, MIN_STEPS


def plan_sizes(log: Path) -> tuple[int, int]:
    """The parameters of a run's model and the optimiser steps of its plan, as it printed them."""
    text = log.read_text()
    params = re.search(r": ([\d,]+) parameters", text).group(1)
    steps = re.search(r"over ([\d,]+) steps", text).group(1)
    return int(params.replace(",", "")), int(steps.replace(",", ""))


def light(size: str) -> str:
    return "g1x512d1" if size == "1x512" else f"g{size}d2"


def pick(runs: dict[str, dict], rule: tuple[float, float, int]) -> str:
    """The grid run a rule ``(m, w, s)`` of the rules' form picks on one text: the largest size
    whose light run planned ``m`` epochs or more in ``s`` steps or more (the smallest where the
    reference, 2 x 512, does not), the heavy dropout where its epochs, counted as the rules count
    them, reach ``w``."""
    m, w, s = rule
    fits = {size: runs[light(size)]["planned"] >= m and runs[light(size)]["steps"] >= s for size in SIZES}
    size = "1x512"
    if fits["2x512"]:
        size = "2x768" if fits["2x768"] else "2x512"
    if size == "1x512":
        return light(size)
    run = runs[light(size)]
    counted = run["planned"] * math.sqrt(min(1.0, run["parameters"] / run["tokens"]))
    return f"g{size}d3w" if counted >= w else light(size)


def regret(runs: dict[str, dict], name: str) -> float:
    best = min(runs[g]["nats"] for g in GRID)
    return runs[name]["nats"] - best


def fit(texts: dict[str, dict[str, dict]]) -> tuple[float, float, int]:
    """The rule of least summed regret over ``texts``; ties go to the one nearest the rules'."""
    def cost(rule: tuple[float, float, int]) -> tuple[float, float]:
        total = sum(regret(runs, pick(runs, rule)) for runs in texts.values())
        m, w, s = rule
        m0, w0, s0 = RULES_NOW
        return round(total, 6), abs(math.log(m / m0)) + abs(math.log(w / w0)) + abs(s - s0) / 1000
    return min(itertools.product(MIN_EPOCHS, HEAVY_FROM, MIN_STEPS), key=cost)


def load(folders: list[Path]) -> dict[str, dict[str, dict]]:
    texts: dict[str, dict[str, dict]] = {}
    for folder in folders:
        for line in (folder / "results.jsonl").read_text().splitlines():
            row = json.loads(line)
            log = folder / f"{Path(row['text']).stem}-{row['arm']}.log"
            row["parameters"], row["steps"] = plan_sizes(log)
            texts.setdefault(row["text"], {})[row["arm"]] = row
    return {text: runs for text, runs in texts.items() if all(a in runs for a in ("rules", *GRID))}


def report(texts: dict[str, dict[str, dict]]) -> None:
    rows = []
    for text, runs in texts.items():
        best = min(GRID, key=lambda g: runs[g]["nats"])
        cells = [f"{runs[g]['nats']:.4f} ({runs[g]['planned']:.1f})" for g in GRID]
        rules = runs["rules"]
        rows.append([text, f"{rules['tokens']:,}", *cells, f"{rules['model']} ({rules['planned']:.1f})",
                     f"{rules['nats']:.4f}", f"{regret(runs, 'rules'):+.4f}", best])
    print(table(["text", "training chars", *GRID, "rules chose (epochs)", "rules", "rules - best grid", "best"],
                rows))
    print()
    rows = []
    for text, runs in texts.items():
        rule = fit({t: r for t, r in texts.items() if t != text})
        chosen, now = pick(runs, rule), pick(runs, RULES_NOW)
        rows.append([text, "m {:g}, w {:g}, s {:,}".format(*rule), chosen, f"{regret(runs, chosen):+.4f}", now,
                     f"{regret(runs, now):+.4f}"])
    print(table(["left out", "fitted on the others", "it picks", "its regret", "the rules' thresholds pick",
                 "their regret"], rows))
    rule = fit(texts)
    print("\nfitted on all {}: m {:g}, w {:g}, s {:,}; ".format(len(texts), *rule)
          + f"summed regret {sum(regret(r, pick(r, rule)) for r in texts.values()):.4f}, "
          + f"the rules' thresholds {sum(regret(r, pick(r, RULES_NOW)) for r in texts.values()):.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("texts", nargs="*", type=Path)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--keep", type=Path, help="where the runs, their logs and results.jsonl go")
    p.add_argument("--analyse", type=Path, nargs="+", help="folders of --keep to report on; runs nothing")
    args, common = p.parse_known_args()
    if args.analyse:
        report(load(args.analyse))
        return
    if not args.keep or not args.texts:
        p.error("give TEXT ... and --keep DIR (or --analyse DIR)")
    args.keep.mkdir(parents=True, exist_ok=True)
    with open(args.keep / "results.jsonl", "a") as results:
        for text in args.texts:
            for arm, options in (("rules", ""), *GRID.items()):
                row = measure(text.resolve(), arm, options.split(), common, args.minutes, args.threads, args.keep)
                results.write(json.dumps(row) + "\n")
                results.flush()
                print(json.dumps(row), flush=True)
    report(load([args.keep]))


if __name__ == "__main__":
    main()
