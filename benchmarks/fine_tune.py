"""Fine-tuning against training from scratch on small texts, under the same CPU budget.

A base is trained on one corpus (``--base-data``, Nietzsche by default, for ``--base-minutes``
of CPU time, or given ready with ``--base RUN``); then each small text (tens of kilobytes, of a
kind the base never saw) is trained for ``--minutes`` of CPU time twice: from scratch with
``--budget`` (the recipe table picks the model for the text) and with ``--init-from`` the base
(its model; the variants below tune the rate, the frozen share, the per-layer rates and the
dropout). Both hold out the same last 20% of the text and are scored on it in bits per
character (the best validation of the run, the weights it keeps). Fine-tuned runs add the
text's characters the base lacks to the vocab (``--extend-vocab``) so that both predict every
character of the held-out part.

Each run is a process of its own with one torch thread and a budget of CPU time
(``time.process_time``), which stays fair on a machine shared with other work; ``--jobs`` of
them run at once.

    python benchmarks/fine_tune.py --texts a.txt b.txt [--base RUN | --base-minutes 10]
        [--minutes 1.5] [--seeds 0 1] [--variants scratch default lr/1 ...] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, set_threads, shared_data, table  # noqa: E402

VARIANTS = {  # name: the settings a run adds to its command line ("scratch": no base)
    "scratch": [],
    "default": [],  # --init-from with its defaults: the base's rate, at least 0.5 dropout
    # the tuning: one setting at a time from a third of the base's rate and the base's dropout
    # (the rates as written are for a base trained at 3e-3, as the recipe table's is)
    "lr/3 dropout 0.3": ["--lr", "1e-3", "--dropout", "0.3"],
    "lr/1 dropout 0.3": ["--lr", "3e-3", "--dropout", "0.3"],
    "lr/10 dropout 0.3": ["--lr", "3e-4", "--dropout", "0.3"],
    "freeze 0.1": ["--lr", "1e-3", "--dropout", "0.3", "--freeze", "0.1"],
    "decay 2.6": ["--lr", "1e-3", "--dropout", "0.3", "--layer-decay", "2.6"],
    "lr/3 dropout 0.5": ["--lr", "1e-3", "--dropout", "0.5"],
}


def run_one(argv: list[str], out: str) -> None:
    """Train one run (``rnnlm train`` ``argv``) in this process on one thread, its budget CPU
    time."""
    import torch

    torch.set_num_threads(1)
    from rnnlm.cli import build_parser, config_from_args
    from rnnlm.cli.train import written_settings
    from rnnlm.train.run import train

    args = build_parser().parse_args(["train", *argv, "--device", "cpu", "--out", out])
    train(config_from_args(args), out, yours=written_settings(args), progress=False, clock=time.process_time,
          log=sys.stderr)


def spawn(argv: list[str], out: Path) -> dict:
    """``run_one`` in a process of its own (its own thread setting and CPU clock), its log
    beside its folder; a run whose log is there already is read, not trained again (an
    interrupted benchmark goes on where it stopped)."""
    log = out.parent / f"{out.name}.log"
    if not log.exists():
        done = subprocess.run([sys.executable, __file__, "--worker", json.dumps([argv, str(out)])],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{out}: {done.stderr[-2000:]}")
        log.write_text(done.stderr)
    return result_of(out)


def result_of(folder: Path) -> dict:
    """A finished run's best validation (bits per character, its epoch and step) and vocab size."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda row: row["valid_loss"])
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    return {"bpc": best["bpc"], "epoch": best["epoch"], "steps": best["step"], "vocab": vocab,
            "validations": len(rows)}


def train_base(data: Path, minutes: float, work: Path) -> Path:
    out = work / "base"
    if not (out / "model.safetensors").exists():
        spawn([str(data), "--budget", f"{minutes * 60:g}s", "--seed", "0"], out)
    return out


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:  # one run, in a process of its own (spawn)
        run_one(*json.loads(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", nargs="+", type=Path, required=True)
    p.add_argument("--base", type=Path, help="a finished run to start from (default: train one)")
    p.add_argument("--base-data", type=Path, default=shared_data("nietzsche.txt"))
    p.add_argument("--base-minutes", type=float, default=10.0)
    p.add_argument("--minutes", type=float, default=1.5, help="CPU minutes of each run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variants", nargs="+", default=["scratch", "default"], choices=list(VARIANTS))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/rnnlm-fine-tune"))
    args = p.parse_args()
    set_threads(1)  # as each run has
    load = os.getloadavg()[1]
    args.work.mkdir(parents=True, exist_ok=True)
    base = args.base or train_base(args.base_data, args.base_minutes, args.work)
    jobs = []
    for text in args.texts:
        for seed in args.seeds:
            for variant in args.variants:
                argv = [str(text), "--budget", f"{args.minutes * 60:g}s", "--seed", str(seed)]
                if variant != "scratch":
                    argv += ["--init-from", str(base), "--extend-vocab", *VARIANTS[variant]]
                name = f"{text.stem}-{variant.replace(' ', '').replace('/', '_')}-s{seed}"
                jobs.append(((text.stem, f"{text.stat().st_size / 1000:.0f} KB", variant, seed), argv,
                             args.work / name))
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: spawn(job[1], job[2]), jobs))
    print(f"{machine()}; {args.jobs} runs at once, each one thread and {args.minutes:g} CPU minutes; load average "
          f"(5 min) {load:.1f} at the start, {os.getloadavg()[1]:.1f} at the end; base {base}\n")
    rows = []
    for (key, _, _), result in zip(jobs, results):
        rows.append([*key, f"{result['bpc']:.3f}", f"{result['epoch']:.1f}", result["steps"], result["validations"],
                     result["vocab"]])
    print(table(["text", "size", "run", "seed", "valid bpc", "best epoch", "its step", "validations", "vocab"], rows))
    print()
    print(summary(jobs, results, args.seeds))


def summary(jobs: list, results: list[dict], seeds: list[int]) -> str:
    """The mean over the seeds of each text and run, and its gain over training from scratch."""
    mean: dict[tuple[str, str], list[float]] = {}
    for (key, _, _), result in zip(jobs, results):
        mean.setdefault((key[0], key[2]), []).append(result["bpc"])
    rows = []
    for (text, variant), values in mean.items():
        scratch = mean.get((text, "scratch"))
        m = sum(values) / len(values)
        gain = "" if scratch is None or variant == "scratch" else f"{m - sum(scratch) / len(scratch):+.3f}"
        rows.append([text, variant, f"{m:.3f}", gain])
    return table(["text", "run", f"mean bpc ({len(seeds)} seeds)", "vs scratch"], rows)


if __name__ == "__main__":
    main()
