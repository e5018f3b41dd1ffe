"""Data preparation: MB/s and peak memory of `rnnlm prepare` on synthetic corpora of growing size.

Each corpus is generated into a temporary folder (deleted afterwards) and prepared by
`rnnlm prepare` in a child process, which reports its own peak resident memory (VmHWM,
Linux). MB/s counts source bytes (10^6) over the time prepare() reports for itself, so the
interpreter and torch start-up are left out (MB per CPU-s: over the child's CPU time less the
baseline's, steadier on a busy machine); they are in the wall time and in the peak memory
(the "baseline" row: the same command on a 10 kB corpus). Time should grow linearly with size
and memory not at all.

At BPE level (``--bpe-sizes``, vocab 2048) the time includes learning the merges, from the
first 8.4 million characters of the training split (rnnlm.data.bpe.TRAIN_CHARS): a fixed cost
of a few seconds, after which encoding runs at the rate the larger corpora show.

    python benchmarks/prepare_speed.py [--sizes 10,100,1000] [--word-sizes 10,100] [--bpe-sizes 10,100,1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

BLOCK_BYTES = 4 << 20
EXTRA_WORDS = ["café", "naïve", "Übermensch", "—", "«quoted»", "déjà", "漢字", "🙂", "straße", "ΟΔΥΣΣΕΥΣ"]


def synthetic_blocks(seed: int = 0, blocks: int = 8) -> list[bytes]:
    """Blocks of English-like text: Zipf-distributed words (a few non-ASCII), punctuation, lines."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    weights = 1 / np.arange(1, 27)
    words = ["".join(rng.choice(letters, size=rng.integers(1, 11), p=weights / weights.sum()))
             for _ in range(20_000)] + EXTRA_WORDS
    rank_weights = 1 / np.arange(1, len(words) + 1)
    rank_weights /= rank_weights.sum()
    out = []
    for _ in range(blocks):
        picks = rng.choice(len(words), size=BLOCK_BYTES // 5, p=rank_weights)
        ends = rng.choice(["", "", "", "", "", ",", ".", ".\n", ";", "!\n"], size=len(picks))
        text = " ".join(words[i] + e for i, e in zip(picks, ends))
        out.append(text.encode("utf-8")[:BLOCK_BYTES].decode("utf-8", "ignore").encode("utf-8"))
    return out


def write_corpus(path: Path, size: int, blocks: list[bytes]) -> None:
    written = 0
    with open(path, "wb") as f:
        while written < size:
            block = blocks[(written // BLOCK_BYTES) % len(blocks)][: size - written]
            f.write(block)
            written += len(block)


CHILD = """
import sys
from rnnlm.cli import main
code = main(sys.argv[1:])
import resource
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
usage = resource.getrusage(resource.RUSAGE_SELF)
print("cpu_s", usage.ru_utime + usage.ru_stime, file=sys.stderr)
print("peak_kb", peak[0] if peak else -1, file=sys.stderr)
sys.exit(code)
"""


LEVEL_OPTIONS = {"char": ["--level", "char"], "word": ["--level", "word"],
                 "bpe": ["--level", "bpe", "--vocab-size", "2048"]}


def run_prepare(corpus: Path, out: Path, level: str) -> dict:
    """Prepare in a child process; its wall time, peak RSS (VmHWM) and what prepare() reported.

    VmHWM is read inside the child: ru_maxrss from wait4 would include the parent's memory,
    which Linux carries over through fork and exec.
    """
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, "prepare", str(corpus), "--out", str(out),
                            *LEVEL_OPTIONS[level]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"prepare failed: {child.stderr}")
    peak_kb = int(child.stderr.split("peak_kb")[-1])
    cpu = float(child.stderr.split("cpu_s")[-1].split()[0])
    meta = json.loads((out / "prepared.json").read_text())
    shutil.rmtree(out)
    return {"wall": wall, "cpu": cpu, "peak_mb": peak_kb / 1024, "meta": meta}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="character-level corpus sizes in MB")
    parser.add_argument("--word-sizes", default="10,100", help="word-level corpus sizes in MB")
    parser.add_argument("--bpe-sizes", default="10,100,1000", help="BPE-level (2048 tokens) corpus sizes in MB")
    parser.add_argument("--tmp", default=None, help="where to write the corpora (default: the system temp dir)")
    args = parser.parse_args()
    jobs = [("char", int(s)) for s in args.sizes.split(",") if s] + \
           [("word", int(s)) for s in args.word_sizes.split(",") if s] + \
           [("bpe", int(s)) for s in args.bpe_sizes.split(",") if s]
    print(f"# rnnlm prepare: speed and peak memory\n\n{machine()}\n")
    blocks = synthetic_blocks()
    rows, base_cpu = [], {}
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="rnnlm-bench-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        write_corpus(corpus, 10_000, blocks)
        for level in sorted({level for level, _ in jobs}):
            base = run_prepare(corpus, Path(tmp) / "out", level)
            base_cpu[level] = base["cpu"]
            rows.append([level, "0.01 (baseline)", f"{base['wall']:.1f}", f"{base['cpu']:.1f}", "-", "-", "-",
                         f"{base['peak_mb']:.0f}"])
        for level, mb in jobs:
            write_corpus(corpus, mb * 10**6, blocks)
            r = run_prepare(corpus, Path(tmp) / "out", level)
            seconds = r["meta"]["seconds"]
            tokens = sum(r["meta"]["tokens"].values())
            rows.append([level, mb, f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{seconds:.1f}", f"{mb / seconds:.1f}",
                         f"{mb / (r['cpu'] - base_cpu[level]):.1f}", f"{r['peak_mb']:.0f}"])
            print(f"  {level} {mb} MB: {mb / seconds:.1f} MB/s, {tokens:,} tokens, peak {r['peak_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
    print(table(["level", "MB", "wall s", "CPU s", "prepare s", "MB/s", "MB per CPU-s", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
