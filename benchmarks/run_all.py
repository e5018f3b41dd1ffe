"""Run every benchmark, one fresh process each, and print their tables (markdown) in turn.

    python benchmarks/run_all.py                       # everything: about 40 minutes on 2 cores
    python benchmarks/run_all.py --quick               # shorter settings, to check they run
    python benchmarks/run_all.py --only generation,prepare_speed
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {  # name: (full options, quick options)
    "train_throughput": ([], ["--seconds", "1"]),
    "generation": ([], ["--chars", "500", "--window-chars", "50"]),
    "prepare_speed": ([], ["--sizes", "10,100", "--word-sizes", "10", "--regex-max", "10"]),
    "compile": ([], ["--seconds", "1"]),
    "quality": (["--lower", "--min-freq", "3"], ["--minutes", "1", "--lower", "--min-freq", "3"]),  # Nietzsche as the lessons
    "distributed": ([], ["--kb", "30"]),
    "novelty": ([], ["--sizes", "20", "--word-sizes", "20", "--prepared", "20"]),
    "serving": ([], ["--quick"]),
    "burst": ([], ["--connections", "200", "--rounds", "1"]),
    "startup": ([], ["--rounds", "3"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short settings: checks that everything runs")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--threads", default=None, help="torch threads for every benchmark (default: torch's choice)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    for name in names:
        full, quick = BENCHMARKS[name]
        command = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        if args.threads and name not in ("prepare_speed", "distributed", "novelty", "startup"):
            command += ["--threads", args.threads]
        print(f"\n<!-- {' '.join(Path(c).name if c.endswith('.py') else c for c in command[1:])} -->", flush=True)
        start = time.perf_counter()
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"\n({name}: {time.perf_counter() - start:.0f} s)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
