"""Data preparation: MB/s and peak memory of `rnnlm prepare` on synthetic corpora of growing size.

Each corpus is generated into a temporary folder (deleted afterwards) and prepared by
`rnnlm prepare` in a child process, which reports its own peak resident memory (VmHWM,
Linux). MB/s counts source bytes (10^6) over the time prepare() reports for itself, so the
interpreter and torch start-up are left out (MB per CPU-s: over the child's CPU time less the
baseline's, steadier on a busy machine); they are in the wall time and in the peak memory
(the "baseline" row: the same command on a 10 kB corpus). Time should grow linearly with size
and memory not at all.

Word level runs two paths on each corpus up to ``--regex-max`` MB, one after the other: rnnlm's
numpy path (``rnnlm.data.wordscan``) and the regular-expression path it replaced
(``WORD_RE.findall`` and a dict lookup a token, still the definition of the tokens); their
ids.bin must be identical.

At BPE level (``--bpe-sizes``, vocab 2048) the time includes learning the merges, from the
first 8.4 million characters of the training split (rnnlm.data.bpe.TRAIN_CHARS): a fixed cost
of a few seconds, after which encoding runs at the rate the larger corpora show.

    python benchmarks/prepare_speed.py [--sizes 10,100,1000] [--word-sizes 10,100,1000] [--regex-max 100]
                                       [--bpe-sizes 10,100,1000]
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
if sys.argv[1] == "regex":  # the word level as it was: WORD_RE.findall and a dict lookup a token
    from rnnlm.data.tokenizers import WordTokenizer
    del WordTokenizer.counter, WordTokenizer.encoder
code = main(sys.argv[2:])
import resource
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
usage = resource.getrusage(resource.RUSAGE_SELF)
print("cpu_s", usage.ru_utime + usage.ru_stime, file=sys.stderr)
print("peak_kb", peak[0] if peak else -1, file=sys.stderr)
sys.exit(code)
"""


LEVEL_OPTIONS = {"char": ["--level", "char"], "word": ["--level", "word"],
                 "bpe": ["--level", "bpe", "--vocab-size", "2048"]}


def run_prepare(corpus: Path, out: Path, level: str, path: str = "numpy") -> dict:
    """Prepare in a child process; its wall time, peak RSS (VmHWM) and what prepare() reported,
    and the ids it wrote at word level. ``path`` "regex" runs the word level as it was.

    VmHWM is read inside the child: ru_maxrss from wait4 would include the parent's memory,
    which Linux carries over through fork and exec.
    """
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, path, "prepare", str(corpus), "--out", str(out),
                            *LEVEL_OPTIONS[level]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=False)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"prepare failed: {child.stderr}")
    peak_kb = int(child.stderr.split("peak_kb")[-1])
    cpu = float(child.stderr.split("cpu_s")[-1].split()[0])
    meta = json.loads((out / "prepared.json").read_text())
    ids = (out / "ids.bin").read_bytes() if level == "word" else b""
    shutil.rmtree(out)
    return {"wall": wall, "cpu": cpu, "peak_mb": peak_kb / 1024, "meta": meta, "ids": ids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="character-level corpus sizes in MB")
    parser.add_argument("--word-sizes", default="10,100,1000", help="word-level corpus sizes in MB")
    parser.add_argument("--regex-max", type=int, default=100,
                        help="largest word-level size (MB) also prepared by the old regex path, side by side")
    parser.add_argument("--bpe-sizes", default="10,100,1000", help="BPE-level (2048 tokens) corpus sizes in MB")
    parser.add_argument("--tmp", default=None, help="where to write the corpora (default: the system temp dir)")
    args = parser.parse_args()
    jobs = [("char", int(s)) for s in args.sizes.split(",") if s] + \
           [("word", int(s)) for s in args.word_sizes.split(",") if s] + \
           [("bpe", int(s)) for s in args.bpe_sizes.split(",") if s]
    print(f"# rnnlm prepare: speed and peak memory\n\n{machine()}\n")
    blocks = synthetic_blocks()
    rows, ratios, base_cpu = [], [], {}

    def add_row(level: str, path: str, mb: int, r: dict) -> None:
        seconds = r["meta"]["seconds"]
        rows.append([level, path, mb, f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{seconds:.1f}", f"{mb / seconds:.1f}",
                     f"{mb / (r['cpu'] - base_cpu[level, path]):.1f}", f"{r['peak_mb']:.0f}"])
        print(f"  {level} ({path}) {mb} MB: {mb / seconds:.1f} MB/s, {sum(r['meta']['tokens'].values()):,} tokens, "
              f"peak {r['peak_mb']:.0f} MB", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="rnnlm-bench-") as tmp:
        corpus, out = Path(tmp) / "corpus.txt", Path(tmp) / "out"
        write_corpus(corpus, 10_000, blocks)
        paths = [(level, "numpy") for level in sorted({level for level, _ in jobs})]
        if any(level == "word" and mb <= args.regex_max for level, mb in jobs):
            paths.append(("word", "regex"))
        for level, path in paths:
            base = run_prepare(corpus, out, level, path)
            base_cpu[level, path] = base["cpu"]
            rows.append([level, path, "0.01 (baseline)", f"{base['wall']:.1f}", f"{base['cpu']:.1f}", "-", "-", "-",
                         f"{base['peak_mb']:.0f}"])
        for level, mb in jobs:
            write_corpus(corpus, mb * 10**6, blocks)
            new = run_prepare(corpus, out, level)
            add_row(level, "numpy", mb, new)
            if level == "word" and mb <= args.regex_max:
                old = run_prepare(corpus, out, level, "regex")
                if old["ids"] != new["ids"]:
                    raise SystemExit(f"{mb} MB: the numpy and regex paths wrote different ids")
                add_row(level, "regex", mb, old)
                ratios.append([mb, f"{old['meta']['seconds'] / new['meta']['seconds']:.1f}x",
                               f"{(old['cpu'] - base_cpu['word', 'regex']) / (new['cpu'] - base_cpu['word', 'numpy']):.1f}x",
                               "same"])
    print(table(["level", "path", "MB", "wall s", "CPU s", "prepare s", "MB/s", "MB per CPU-s", "peak RSS MB"], rows))
    if ratios:
        print("\nword level, the regex path's time over the numpy path's, same corpus:\n")
        print(table(["MB", "prepare s", "CPU s less baseline", "ids.bin"], ratios))


if __name__ == "__main__":
    main()
