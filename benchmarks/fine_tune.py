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
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, shared_data, table  # noqa: E402

VARIANTS = {  # name: the settings a run adds to its command line ("scratch": no base)
    "scratch": [],
    "default": [],  # --init-from with its defaults
    "lr/1": ["--lr", "3e-3"],  # the base's peak rate
    "lr/10": ["--lr", "3e-4"],
    "freeze 0.1": ["--freeze", "0.1"],
    "decay 2.6": ["--layer-decay", "2.6"],
    "dropout 0.5": ["--dropout", "0.5"],
}


def run_one(argv: list[str], out: str) -> dict:
    """Train one run (``rnnlm train`` ``argv``) in this process on one thread, its budget CPU
    time; its best validation in bits per character."""
    import torch

    torch.set_num_threads(1)
    from rnnlm.cli import build_parser, config_from_args
    from rnnlm.cli.train import written_settings
    from rnnlm.train.run import train

    args = build_parser().parse_args(["train", *argv, "--device", "cpu", "--out", out])
    start = time.process_time()
    result = train(config_from_args(args), out, yours=written_settings(args), progress=False,
                   clock=time.process_time, log=sys.stderr)
    best = min(result.history, key=lambda row: row["valid_loss"])
    return {"bpc": best["bpc"],
            "cpu_s": time.process_time() - start, "steps": best.get("step"), "vocab": len(result.data.vocab)}


def spawn(argv: list[str], out: Path) -> dict:
    """``run_one`` in a process of its own (its own thread setting and CPU clock)."""
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps([argv, str(out)])],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{out}: {done.stderr[-2000:]}")
    (out.parent / f"{out.name}.log").write_text(done.stderr)
    return json.loads(done.stdout.splitlines()[-1])


def train_base(data: Path, minutes: float, work: Path) -> Path:
    out = work / "base"
    if not (out / "model.safetensors").exists():
        spawn([str(data), "--budget", f"{minutes * 60:g}s", "--seed", "0"], out)
    return out


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:  # one run, in a process of its own (spawn)
        print(json.dumps(run_one(*json.loads(sys.argv[2]))))
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
    print(f"{machine()}; {args.jobs} runs at once, 1 torch thread each; base {base}\n")
    rows = []
    for (key, _, _), result in zip(jobs, results):
        rows.append([*key, f"{result['bpc']:.3f}", result["steps"], result["vocab"], f"{result['cpu_s']:.0f}"])
    print(table(["text", "size", "run", "seed", "valid bpc", "steps", "vocab", "CPU s"], rows))
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
