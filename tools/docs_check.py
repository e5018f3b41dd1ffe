"""Rerun the commands the docs show with their output, and compare.

A fenced block right after a line ``<!-- check -->`` (or ``<!-- check: quick -->``) holds
``$ command`` lines, each followed by the output the docs promise. This script runs each command
from the repository's root (so ``runs/demo`` and ``../shared/data/...`` mean what they mean in
the docs) and compares the output with the block:

- lines that depend on the time or the machine (times, durations, dates, process ids, the
  load) are left out on both sides;
- a line ``...`` in the block stands for any number of lines;
- the home folder prints as ``~``;
- numbers agree to 4 significant digits (the last digits of a float move with the CPU's kernels).

``quick`` blocks need nothing but the package (errors caught before any model is loaded, the
list of datasets); tests/test_docs.py reruns them in the test suite. The others may need the
demo run (trained here first when ``runs/demo`` is missing, as ``make demo`` does) or the
Nietzsche text in ``../shared/data``, and run with ``make docs-check``.

    python tools/docs_check.py [--quick] [FILE.md ...]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"^<!-- check(: quick)? -->\s*$")
TIMELY = re.compile(
    r"\b\d\d:\d\d\b"  # the time column of the epoch table, clock times
    r"|\b\d+(\.\d+)? ?(s|ms|seconds|minutes)\b"  # durations
    r"|\b20\d\d-\d\d-\d\d\b"  # dates
    r"|\bpid \d+|load average|tokens/s|MB/s"
)


@dataclass
class Example:
    path: Path
    line: int  # of the command in the file
    command: str
    expected: list[str]
    quick: bool


def examples(paths: list[Path]) -> list[Example]:
    """Every ``$ command`` of every checked block, with the output shown under it."""
    found = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = MARK.match(line)
            if not match or i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
                continue
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            current = None
            for j in range(i + 2, end):
                if lines[j].startswith("$ "):
                    current = Example(path, j + 1, lines[j][2:], [], bool(match.group(1)))
                    found.append(current)
                elif current is not None:
                    current.expected.append(lines[j])
    return found


def comparable(lines: list[str]) -> list[str]:
    home = str(Path.home())
    return [line.replace(home, "~").rstrip() for line in lines if not TIMELY.search(line)]


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def same_line(expected: str, actual: str) -> bool:
    """Equal text around the numbers, and numbers equal to 4 significant digits."""
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    return all(math.isclose(float(a), float(b), rel_tol=1e-4, abs_tol=1e-6)
               for a, b in zip(NUMBER.findall(expected), NUMBER.findall(actual)))


def same_lines(expected: list[str], actual: list[str]) -> bool:
    return len(expected) == len(actual) and all(map(same_line, expected, actual))


def matches(expected: list[str], actual: list[str]) -> bool:
    """The expected lines, in order, with ``...`` standing for any lines."""
    chunks, chunk = [], []
    for line in comparable(expected):
        if line.strip() == "...":
            chunks.append(chunk)
            chunk = []
        else:
            chunk.append(line)
    chunks.append(chunk)
    actual = comparable(actual)
    if len(chunks) == 1:
        return same_lines(chunks[0], actual)
    at = 0
    for k, chunk in enumerate(chunks):
        if not chunk:
            continue
        if k == 0:
            if not same_lines(chunk, actual[: len(chunk)]):
                return False
            at = len(chunk)
            continue
        starts = [s for s in range(at, len(actual) - len(chunk) + 1) if same_lines(chunk, actual[s : s + len(chunk)])]
        if k == len(chunks) - 1:
            starts = [s for s in starts if s + len(chunk) == len(actual)]
        if not starts:
            return False
        at = starts[0] + len(chunk)
    return True


def run(example: Example, bin_dir: Path) -> list[str]:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "100"}
    done = subprocess.run(["bash", "-c", example.command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    return (done.stdout + done.stderr).splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--quick", action="store_true", help="only the blocks marked quick")
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    todo = [e for e in examples([f.resolve() for f in args.files] or DOCS) if e.quick or not args.quick]
    if any("runs/demo" in e.command for e in todo) and not (ROOT / "runs" / "demo" / "config.json").exists():
        print("training runs/demo first (make demo) ...", flush=True)
        subprocess.run([str(bin_dir / "rnnlm"), "train", "--out", "runs/demo"], cwd=ROOT, check=True,
                       capture_output=True)
    failed = 0
    for e in todo:
        actual = run(e, bin_dir)
        ok = matches(e.expected, actual)
        where = f"{e.path.relative_to(ROOT)}:{e.line}"
        print(f"{'ok  ' if ok else 'FAIL'} {where}: {shlex.split(e.command)[:3]}", flush=True)
        if not ok:
            failed += 1
            print("  expected:\n" + "\n".join("    " + line for line in comparable(e.expected)))
            print("  got:\n" + "\n".join("    " + line for line in comparable(actual)))
    print(f"{len(todo) - failed} of {len(todo)} shown outputs reproduced")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
