"""Training in one process against two under torchrun, same machine, same run: tokens/s.

Each row trains one epoch of the same character-level corpus (the first --kb kilobytes of
Nietzsche when ../shared/data has it, else generated text) at the same global batch, in turn:

    1 process,  --threads 1
    1 process,  --threads 2       (torch's own threads over both cores)
    2 processes under torchrun, 1 thread each (DistributedDataParallel, gloo)

and reads tokens and seconds from the run's metrics.jsonl (the epoch's training plus its
validation, which is 2% of the text). On a CPU, two processes pay for an all-reduce of every
gradient each step; they win where one process's threads cannot keep both cores busy.

    python benchmarks/distributed.py [--kb 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

NIETZSCHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"

# (cell, layers, emb, hidden, bs, bptt)
CONFIGS = [
    ("gru", 1, 42, 256, 64, 8),  # the Nietzsche GRU of the README: small steps, overhead-bound
    ("lstm", 2, 64, 512, 64, 64),  # rnnlm's recommended character recipe (benchmarks/quality.py)
]


def corpus(kb: int, folder: Path) -> Path:
    path = folder / "corpus.txt"
    if NIETZSCHE.is_file():
        text = NIETZSCHE.read_text(encoding="utf-8")[: kb * 1000]
    else:
        rng = random.Random(0)
        words = ["the", "will", "to", "power", "is", "truth", "and", "what", "man", "of", "spirit", "free"]
        text = " ".join(rng.choice(words) for _ in range(kb * 200))[: kb * 1000]
    path.write_text(text, encoding="utf-8")
    return path


def tokens_per_second(command: list[str], out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    done = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return row["tokens"] / row["time"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", type=int, default=300, help="corpus size in kilobytes (default 300)")
    args = parser.parse_args()
    rnnlm = [sys.executable, "-m", "rnnlm", "train"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                "rnnlm", "train"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = corpus(args.kb, folder)
        for n, (cell, layers, emb, hidden, bs, bptt) in enumerate(CONFIGS):
            options = [str(text), "--level", "char", "--model", cell, "--layers", str(layers), "--emb", str(emb),
                       "--hidden", str(hidden), "--bs", str(bs), "--bptt", str(bptt), "--epochs", "1",
                       "--valid-frac", "0.02", "--device", "cpu"]
            one_1 = tokens_per_second(rnnlm + options + ["--threads", "1"], folder / f"{n}-one-1")
            one_2 = tokens_per_second(rnnlm + options + ["--threads", "2"], folder / f"{n}-one-2")
            two = tokens_per_second(torchrun + options + ["--threads", "1"], folder / f"{n}-two")
            rows.append([f"{cell} {layers}x{hidden}", f"{bs}x{bptt}", f"{one_1:,.0f}", f"{one_2:,.0f}",
                         f"{two:,.0f}", f"{two / max(one_1, one_2):.2f}"])
    print(f"\n{machine()}; corpus: {'Nietzsche' if NIETZSCHE.is_file() else 'generated'}, {args.kb} kB\n")
    print(table(["model", "bs x bptt", "1 proc, 1 thread tok/s", "1 proc, 2 threads tok/s",
                 "torchrun 2 procs tok/s", "2 procs / best 1"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
