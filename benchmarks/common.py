"""Shared helpers of the benchmarks: the machine, markdown tables, the fp32 matmul peak."""

from __future__ import annotations

import os
import platform
import time
from datetime import date
from pathlib import Path

import torch
from torch.utils.mkldnn import to_mkldnn


def shared_data(name: str) -> Path:
    """``shared/data/NAME`` in the nearest folder above the benchmarks that has one (a git
    worktree sits deeper than the main checkout), else where the main checkout would find it."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "shared" / "data" / name).is_file():
            return parent / "shared" / "data" / name
    return here.parents[2] / "shared" / "data" / name


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_threads_option(parser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, one per core); on a busy machine, "
                             "1 is far steadier: more threads than free cores stall at every sync")


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def machine() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, {date.today().isoformat()}")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A markdown table, columns padded so it also reads well in a terminal."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def best_times(fns: list, seconds: float = 1.0, min_runs: int = 3) -> list[float]:
    """Shortest wall time of one call of each of ``fns``, called in turn (A B A B ...) so that a
    busy spell of a shared machine slows them alike; the shortest is the least disturbed call."""
    for fn in fns:
        fn()
    best, spent, runs = [float("inf")] * len(fns), 0.0, 0
    while spent < seconds * len(fns) or runs < min_runs:
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            best[i], spent = min(best[i], took), spent + took
        runs += 1
    return best


def best_time(fn, seconds: float = 1.0, min_runs: int = 3) -> float:
    return best_times([fn], seconds, min_runs)[0]


def matmul_peak_gflops(n: int = 2048, seconds: float = 1.0) -> dict[str, float]:
    """fp32 GFLOP/s of a square ``n`` x ``n`` matmul (2 n^3 FLOPs) with the current torch threads,
    through the two libraries torch uses on the CPU: MKL (torch.mm, nn.Linear, the GRU and RNN
    cells) and oneDNN (the LSTM). On AMD CPUs MKL does not use its fastest code, so the two differ."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    linear = to_mkldnn(torch.nn.Linear(n, n, bias=False))
    a_onednn = a.to_mkldnn()
    with torch.no_grad():
        mkl, onednn = best_times([lambda: torch.mm(a, b, out=out), lambda: linear(a_onednn)], seconds)
    return {"mkl": 2 * n**3 / mkl / 1e9, "onednn": 2 * n**3 / onednn / 1e9}
