"""Novelty: MB/s and peak memory of the scan of a training text of growing size.

Training texts of each size are built in a temporary folder (deleted afterwards) from
Nietzsche's paragraphs in shuffled orders (the synthetic text of prepare_speed.py when no copy
of nietzsche.txt is found), and each is checked in a child process, which reports its peak
resident memory (``resource.getrusage``, and VmHWM). The checked texts are small, as samples
are: 5,000 characters from an order-5 character Markov chain fitted to Nietzsche (text that
looks generated: it shares many short n-grams with the corpus and few long ones), and 5,000
random letters. The split is the default one (the last 20% held out), so a raw text is read
twice: once to count its characters (where the cut falls), once to scan the first 80%.
MB/s is source MB (10^6 bytes) over the wall-clock seconds ``novelty`` reports for itself,
interpreter and start-up left out (the "baseline" row shows what they cost in memory); CPU s
counts both of its threads (one reads and tokenizes ahead, one matches). Time should grow
linearly with the size and memory not at all.

    python benchmarks/novelty.py [--sizes 100,300,1000] [--word-sizes 100,300] [--prepared 100]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, table  # noqa: E402
from prepare_speed import synthetic_blocks  # noqa: E402

NIETZSCHE = [Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt",
             Path("/work/shared/data/nietzsche.txt"), Path.home() / ".cache" / "rnnlm" / "nietzsche.txt"]
SAMPLE_CHARS = 5_000


def source_text() -> tuple[str, str]:
    for path in NIETZSCHE:
        if path.is_file():
            return path.read_text(encoding="utf-8"), "nietzsche.txt paragraphs, shuffled"
    return b"".join(synthetic_blocks(blocks=2)).decode("utf-8"), "synthetic English-like text"


def write_corpus(path: Path, size: int, text: str, seed: int = 0) -> None:
    """``size`` bytes of ``text``'s paragraphs in ever new orders."""
    rng = random.Random(seed)
    paragraphs = text.split("\n\n")
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            rng.shuffle(paragraphs)
            block = "\n\n".join(paragraphs).encode("utf-8")[: size - written].decode("utf-8", "ignore")
            f.write(block)
            written += len(block.encode("utf-8"))


def markov_sample(text: str, length: int, order: int = 5, seed: int = 1) -> str:
    """Text from an order-``order`` character Markov chain fitted to ``text``."""
    following = defaultdict(list)
    for i in range(len(text) - order):
        following[text[i : i + order]].append(text[i + order])
    rng = random.Random(seed)
    out = text[:order]
    while len(out) < length:
        choices = following.get(out[-order:]) or [rng.choice(text)]
        out += rng.choice(choices)
    return out


CHILD = """
import json, resource, sys, time
from rnnlm.config import DataConfig
from rnnlm.inspect.novelty import novelty
source, level, sample = sys.argv[1:4]
cpu = time.process_time()
text = open(sample, encoding="utf-8").read()
report = novelty(text, DataConfig(source=source, level=level or None), progress=False)
cpu = time.process_time() - cpu
peak = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")]
longest = report.longest.length if report.longest else 0
print(json.dumps({"seconds": report.seconds, "cpu": cpu, "scanned": report.scanned, "longest": longest,
                  "shared": [s.fraction for s in report.shared],
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "vmhwm_mb": peak[0] / 1024 if peak else None}))
"""


def check(source: Path, level: str, sample: Path) -> dict:
    child = subprocess.run([sys.executable, "-c", CHILD, str(source), level, str(sample)], capture_output=True,
                           text=True)
    if child.returncode != 0:
        raise SystemExit(f"novelty failed: {child.stderr}")
    return json.loads(child.stdout)


def prepare(source: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "rnnlm", "prepare", str(source), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,300,1000", help="character-level training text sizes in MB")
    parser.add_argument("--word-sizes", default="100,300", help="word-level sizes in MB")
    parser.add_argument("--prepared", default="100,300", help="sizes also checked as a prepared folder (char level)")
    parser.add_argument("--tmp", default=None, help="where to write the texts (default: the system temp dir)")
    args = parser.parse_args()
    sizes = lambda text: [int(s) for s in text.split(",") if s]  # noqa: E731
    text, origin = source_text()
    jobs = sorted({(mb, level) for level, option in (("char", args.sizes), ("word", args.word_sizes))
                   for mb in sizes(option)})
    print(f"# rnnlm novelty: scan speed and peak memory\n\n{cpu_model()}, training text: {origin}; "
          f"samples of {SAMPLE_CHARS:,} characters\n")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="rnnlm-bench-") as tmp:
        tmp = Path(tmp)
        samples = {"markov": tmp / "markov.txt", "random": tmp / "random.txt"}
        samples["markov"].write_text(markov_sample(text, SAMPLE_CHARS), encoding="utf-8")
        rng = random.Random(2)
        samples["random"].write_text("".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(SAMPLE_CHARS)),
                                     encoding="utf-8")
        corpus = tmp / "corpus.txt"
        write_corpus(corpus, 10_000, text)
        base = check(corpus, "char", samples["markov"])
        rows.append(["baseline (10 kB)", "char", "markov", "-", "-", "-", "-", "-", f"{base['maxrss_mb']:.0f}"])
        for mb, level in jobs:
            write_corpus(corpus, mb * 10**6, text)
            sources = [("text", corpus)]
            if level == "char" and mb in sizes(args.prepared):
                prepare(corpus, tmp / "prepared")
                sources.append(("prepared", tmp / "prepared"))
            for kind, source in sources:
                for name, sample in samples.items():
                    r = check(source, level if kind == "text" else "", sample)
                    shares = " / ".join(f"{f:.3f}" for f in r["shared"])
                    rows.append([f"{mb} MB {kind}", level, name, r["longest"], shares, f"{r['seconds']:.1f}",
                                 f"{r['cpu']:.1f}", f"{mb / r['seconds']:.0f}", f"{r['maxrss_mb']:.0f}"])
                    print(f"  {rows[-1]}", file=sys.stderr, flush=True)
            shutil.rmtree(tmp / "prepared", ignore_errors=True)
    print(table(["training text", "level", "sample", "longest", "shared n-grams (small to large n)", "seconds",
                 "CPU s", "MB/s", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
