"""``--budget``'s recipe rules against what its recipe table chose before, on corpora of your choice.

For each text, one after the other, each as a user runs it:

    new    rnnlm train TEXT --budget T                 the rules: size and dropout from the epochs
                                                       that fit, bf16 where the CPU has it
    old    rnnlm train TEXT --budget T <the old row>   the recipe table of 2026-12-04 given as options,
                                                       in fp32 (what --budget trained before)
    extra  rnnlm train TEXT --budget T <--arm options> any hand recipe, e.g. a grid's

then ``rnnlm evaluate RUN --streams 1``: the best model's loss on the whole held-out split, read
as one text, in nats and bits per character.

    python benchmarks/recipe_rule.py --minutes 5 --threads 1 TEXT [TEXT ...] [--lower --min-freq 3]
    python benchmarks/recipe_rule.py --minutes 5 --threads 1 TEXT --arm "d0.5=--dropout 0.5"

With ``--threads 1`` on a shared machine, pin it to one core (``taskset -c 0``) so its budget
is that core's wall clock.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402

OLD_REFERENCE = "--model lstm --emb 64 --bs 64 --bptt 16 --lr 3e-3 --precision fp32"


def old_row(train_tokens: int, reference_epochs: float) -> str:
    """The options of the row the recipe table (src/rnnlm/train/recipe.py at 2026-12-04) chose for
    a character corpus: 2 x 512 but 1 x 512 from a million tokens, 0 dropout from four million."""
    if train_tokens <= 250_000:
        size, dropout = "--layers 2 --hidden 512", 0.3
    elif train_tokens <= 1_000_000:
        size, dropout = "--layers 2 --hidden 512", 0.2 if reference_epochs <= 6 else 0.3
    elif train_tokens <= 4_000_000:
        size, dropout = "--layers 1 --hidden 512", 0.2
    else:
        size, dropout = "--layers 2 --hidden 512", 0.0
    return f"{size} --dropout {dropout:g} {OLD_REFERENCE}"


def run(args: list[str], log: Path) -> str:
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "rnnlm", *args], stdout=f, stderr=subprocess.STDOUT, check=True)
    return log.read_text()


def plan_numbers(text: str) -> tuple[int, float, str]:
    """Training tokens, the epochs planned and the model line of a printed plan."""
    tokens = int(re.search(r"([\d,]+) training", text).group(1).replace(",", ""))
    epochs = float(re.search(r"= ([\d.]+) epochs that fit", text).group(1))
    model = re.search(r"  model     (.*?):", text).group(1)
    return tokens, epochs, model


def used_minutes(text: str) -> float:
    """The budget the run used, as its last line says (``used 4m40s``)."""
    found = re.search(r"used (?:(\d+)m)?(?:(\d+)s)?", text)
    return (int(found.group(1) or 0) * 60 + int(found.group(2) or 0)) / 60 if found else math.nan


def trained_epochs(folder: Path) -> float:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max((row["epoch"] for row in rows if "epoch" in row), default=0.0)


def measure(text: Path, arm: str, options: list[str], common: list[str], minutes: float, threads: int | None,
            work: Path) -> dict:
    out = work / f"{text.stem}-{arm}"
    threads_opt = ["--threads", str(threads)] if threads else []
    log = work / f"{out.name}.log"
    if (out / "model.safetensors").exists() and log.exists():  # a run of an earlier call, in --keep
        printed = log.read_text()
    else:
        printed = run(["train", str(text), "--budget", f"{minutes:g}m", "--out", str(out), *threads_opt, *common,
                       *options], log)
    tokens, planned, model = plan_numbers(printed)
    scored = json.loads(run(["evaluate", str(out), "--streams", "1", "--json", *threads_opt], work / "eval.json"))
    nats = scored["bits_per_char"] * math.log(2)
    estimated = re.search(r"2 x 512 ([\d.]+)", printed)
    return {"text": text.name, "arm": arm, "model": model, "planned": planned, "trained": trained_epochs(out),
            "reach": float(estimated.group(1)) if estimated else 0.0, "minutes": used_minutes(printed), "nats": nats,
            "bits": nats / math.log(2), "tokens": tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("texts", nargs="+", type=Path)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--arm", action="append", default=[], help="NAME=OPTIONS: a hand recipe to run too")
    p.add_argument("--skip-old", action="store_true", help="run the rules (and --arm) only")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs and their logs in this folder")
    args, common = p.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for text in args.texts:
            new = measure(text, "new", [], common, args.minutes, args.threads, work)
            results.append(new)
            print(json.dumps(new), flush=True)
            arms = [] if args.skip_old else [("old", None)]
            arms += [tuple(a.split("=", 1)) for a in args.arm]
            for name, options in arms:
                if options is None:
                    options = old_row(new["tokens"], new["reach"])  # the reference's reach, as the rules printed it
                result = measure(text, name, options.split(), common, args.minutes, args.threads, work)
                results.append(result)
                print(json.dumps(result), flush=True)
    rows = [[r["text"], r["arm"], r["model"], f"{r['planned']:.1f}", f"{r['trained']:.1f}", f"{r['minutes']:.1f}",
             f"{r['nats']:.4f}", f"{r['bits']:.4f}"] for r in results]
    print(table(["text", "arm", "model", "epochs planned", "trained", "wall min", "nats/char", "bits/char"], rows))


if __name__ == "__main__":
    main()
