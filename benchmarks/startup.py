"""Start-up: how long the `rnnlm` command takes to answer, each command a fresh process.

Side by side in one run, interleaved (round after round of every command, so a busy spell of a
shared machine slows them alike), median of the rounds: `python -c pass` (the interpreter),
`python -c "import torch"` (the floor of any command that needs torch), `rnnlm --help`, every
`rnnlm CMD --help`, `rnnlm datasets`, and `rnnlm generate RUN -n 1` on a tiny run trained first
in a temporary folder. A last table splits one `generate -n 1` into its phases, timed inside the
process.

    python benchmarks/startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, table

TARGET = 0.3  # seconds: --help, datasets
TEXT = "the cat sat on the mat. the dog sat on the log. " * 80
TINY = ["--model", "gru", "--layers", "1", "--emb", "8", "--hidden", "16", "--bs", "4", "--bptt", "8",
        "--epochs", "1", "--device", "cpu", "--threads", "1"]
PHASES = """
import io, json, sys, time, contextlib
t = [time.perf_counter()]
import torch
t.append(time.perf_counter())
import numpy, safetensors.torch
from rnnlm.cli.main import main
import rnnlm.generation.prompt, rnnlm.runfolder
t.append(time.perf_counter())
from rnnlm.runfolder import load_run
run = load_run(sys.argv[1], device="cpu")
t.append(time.perf_counter())
with contextlib.redirect_stdout(io.StringIO()):
    main(["generate", sys.argv[1], "-n", "1", "--device", "cpu"])
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""


def rnnlm_command() -> list[str]:
    script = Path(sys.executable).parent / "rnnlm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rnnlm"]


def commands() -> list[str]:
    from rnnlm.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    child = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    took = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {child.stderr.strip()[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="runs of each command (the median is shown)")
    args = parser.parse_args()
    rnnlm = rnnlm_command()
    with tempfile.TemporaryDirectory(prefix="rnnlm-startup-") as tmp:
        corpus, run = Path(tmp) / "tiny.txt", Path(tmp) / "run"
        corpus.write_text(TEXT)
        subprocess.run([*rnnlm, "train", str(corpus), *TINY, "--out", str(run)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cases = {"python -c pass": [sys.executable, "-c", "pass"],
                 'python -c "import torch"': [sys.executable, "-c", "import torch"],
                 "rnnlm --help": [*rnnlm, "--help"]}
        cases.update({f"rnnlm {name} --help": [*rnnlm, name, "--help"] for name in commands()})
        cases["rnnlm datasets"] = [*rnnlm, "datasets"]
        cases["rnnlm generate RUN -n 1"] = [*rnnlm, "generate", str(run), "-n", "1", "--device", "cpu"]
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, argv in cases.items():
                times[name].append(timed(argv))
        phases = [json.loads(subprocess.run([sys.executable, "-c", PHASES, str(run)], check=True,
                                            capture_output=True, text=True).stdout) for _ in range(args.rounds)]
    median = {name: statistics.median(t) for name, t in times.items()}
    base, torch_import = median["python -c pass"], median['python -c "import torch"']
    rows = []
    for name, seconds in median.items():
        if "--help" in name or name == "rnnlm datasets":
            verdict = "yes" if seconds < TARGET else "NO"
        elif name.startswith("rnnlm generate"):
            verdict = f"torch + {seconds - torch_import:.2f} s"
        else:
            verdict = ""
        rows.append([name, f"{seconds:.3f}", f"{seconds - base:.3f}", f"{min(times[name]):.3f}", verdict])
    print(f"# rnnlm start-up\n\n{cpu_model()}, {rounds_note(args.rounds)}\n")
    print(table(["command", "median s", "beyond python s", "fastest s", f"< {TARGET} s / beyond torch"], rows))
    names = ["import torch", "import numpy, safetensors, rnnlm's generate modules", "load_run (weights)",
             "generate -n 1 (load again, sample, print)"]
    split = [statistics.median(p[i] for p in phases) for i in range(len(names))]
    print(f"\n`rnnlm generate RUN -n 1` inside one process (median of {args.rounds}):\n")
    print(table(["phase", "s"], [[n, f"{s:.3f}"] for n, s in zip(names, split)]))


def rounds_note(rounds: int) -> str:
    return f"median of {rounds} interleaved rounds, {time.strftime('%Y-%m-%d')}"


if __name__ == "__main__":
    main()
