"""Data preparation: MB/s and peak memory of `rnnlm prepare` on synthetic corpora of growing size.

Each corpus is generated into a temporary folder (deleted afterwards) and prepared by
`rnnlm prepare` in a child process, which reports its own peak resident memory (VmHWM,
Linux). MB/s counts source bytes (10^6) over the time prepare() reports for itself, so the
interpreter's start is left out; it is in the wall time and in the peak memory (the "baseline"
rows: the same command on a 10 kB corpus). MB/CPU s counts them over the CPU time of the
command in the child, which other work on a shared machine disturbs far less. Time should grow
linearly with size and memory not at all.

Word level runs two paths on the same corpus, one after the other: rnnlm's numpy path
(``wordscan``) and the regular-expression path it replaced (``WORD_RE.findall`` and a dict
lookup a token, still the definition of the tokens), up to ``--regex-max`` MB; their ids.bin
must be identical.

    python benchmarks/prepare_speed.py [--sizes 10,100,1000] [--word-sizes 10,100,1000] [--regex-max 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, table  # noqa: E402

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
import resource, sys, time
from rnnlm.cli import main
if sys.argv[1] == "regex":  # the word path as it was: WORD_RE.findall and a dict lookup a token
    from rnnlm.data.tokenizers import WordTokenizer
    del WordTokenizer.counter, WordTokenizer.encoder
start = time.process_time()
code = main(sys.argv[2:])
cpu = time.process_time() - start
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
print("cpu_s", cpu, "peak_kb", peak[0] if peak else -1, "torch", "torch" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def run_prepare(corpus: Path, out: Path, level: str, path: str = "numpy") -> dict:
    """Prepare in a child process; its wall time, CPU time and peak RSS (VmHWM), and what prepare()
    reported. ``path`` "regex" runs the word level as it was before wordscan.

    VmHWM is read inside the child: ru_maxrss from wait4 would include the parent's memory,
    which Linux carries over through fork and exec.
    """
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, path, "prepare", str(corpus), "--out", str(out),
                            "--level", level], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=False)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"prepare failed: {child.stderr}")
    report = child.stderr.split("cpu_s")[-1].split()
    meta = json.loads((out / "prepared.json").read_text())
    ids = (out / "ids.bin").read_bytes() if path == "regex" or level == "word" else b""
    shutil.rmtree(out)
    return {"wall": wall, "cpu": float(report[0]), "peak_mb": int(report[2]) / 1024, "torch": report[4] == "True",
            "meta": meta, "ids": ids}


def row(level: str, path: str, mb: float, r: dict) -> list:
    seconds = r["meta"]["seconds"]
    return [level, path, mb, f"{r['wall']:.1f}", f"{seconds:.1f}", f"{mb / seconds:.1f}", f"{r['cpu']:.1f}",
            f"{mb / r['cpu']:.1f}", f"{r['peak_mb']:.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="character-level corpus sizes in MB")
    parser.add_argument("--word-sizes", default="10,100,1000", help="word-level corpus sizes in MB")
    parser.add_argument("--regex-max", type=int, default=100,
                        help="largest word-level size (MB) also prepared by the old regex path, side by side")
    parser.add_argument("--tmp", default=None, help="where to write the corpora (default: the system temp dir)")
    args = parser.parse_args()
    char_sizes = [int(s) for s in args.sizes.split(",") if s]
    word_sizes = [int(s) for s in args.word_sizes.split(",") if s]
    print(f"# rnnlm prepare: speed and peak memory\n\n{cpu_model()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}\n")
    blocks = synthetic_blocks()
    rows, ratios = [], []
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="rnnlm-bench-") as tmp:
        corpus, out = Path(tmp) / "corpus.txt", Path(tmp) / "out"
        write_corpus(corpus, 10_000, blocks)
        for level, path in [("char", "numpy")] * bool(char_sizes) + [("word", "numpy"), ("word", "regex")] * bool(word_sizes):
            base = run_prepare(corpus, out, level, path)
            rows.append([level, path, "0.01 (baseline)", f"{base['wall']:.1f}", "-", "-", "-", "-", f"{base['peak_mb']:.0f}"])
        for mb in char_sizes:
            write_corpus(corpus, mb * 10**6, blocks)
            rows.append(row("char", "numpy", mb, run_prepare(corpus, out, "char")))
            print(f"  char {mb} MB: {rows[-1][5]} MB/s", file=sys.stderr, flush=True)
        for mb in word_sizes:
            write_corpus(corpus, mb * 10**6, blocks)
            new = run_prepare(corpus, out, "word")
            rows.append(row("word", "numpy", mb, new))
            if mb <= args.regex_max:
                old = run_prepare(corpus, out, "word", "regex")
                if old["ids"] != new["ids"]:
                    raise SystemExit(f"{mb} MB: the numpy and regex paths wrote different ids")
                rows.append(row("word", "regex", mb, old))
                ratios.append([mb, f"{old['meta']['seconds'] / new['meta']['seconds']:.1f}x",
                               f"{old['cpu'] / new['cpu']:.1f}x", "same"])
            print(f"  word {mb} MB: {rows[-1 - (mb <= args.regex_max)][5]} MB/s", file=sys.stderr, flush=True)
    print(table(["level", "path", "MB", "wall s", "prepare s", "MB/s", "CPU s", "MB/CPU s", "peak RSS MB"], rows))
    if ratios:
        print("\nword level, numpy path against the regex path on the same corpus:\n")
        print(table(["MB", "prepare s ratio", "CPU s ratio", "ids.bin"], ratios))


if __name__ == "__main__":
    main()
