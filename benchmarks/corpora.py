"""Texts for the quality benchmarks, made from what is on this machine (nothing is downloaded).

    man-de.txt       the German manual pages (/usr/share/man/de), rendered as plain text by man:
                     German technical prose with option lists, about 2 MB
    vim-doc.txt      Vim's help files (/usr/share/vim/vim*/doc/*.txt): English technical text
                     with code and tables, about 9.5 MB
    nietzsche-150k.txt  the first 150,000 characters of Nietzsche (a small corpus)

    python benchmarks/corpora.py --out /tmp/corpora [--only man-de,vim-doc]

Each is written once (an existing file is kept); the script prints the path and size of each.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import shared_data  # noqa: E402

NIETZSCHE = shared_data("nietzsche.txt")


def man_pages(language: str) -> str:
    """Every manual page of ``language`` as man renders it for an 80-column terminal, without
    hyphenation or justification, backspace overstrikes and tabs removed."""
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "", "LANG": "C.UTF-8"}
    pages = sorted(glob.glob(f"/usr/share/man/{language}/man*/*"))
    texts = []
    for page in pages:
        shown = subprocess.run(["man", "--nh", "--nj", "-l", page], capture_output=True, env=env)
        if shown.returncode == 0 and shown.stdout:
            plain = subprocess.run(["col", "-bx"], input=shown.stdout, capture_output=True).stdout
            texts.append(plain.decode("utf-8", "replace"))
    return "\n".join(texts)


def vim_docs() -> str:
    files = sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt"))
    return "\n".join(Path(f).read_text(encoding="utf-8", errors="replace") for f in files)


MAKERS = {
    "man-de": lambda: man_pages("de"),
    "vim-doc": vim_docs,
    "nietzsche-150k": lambda: NIETZSCHE.read_text(encoding="utf-8")[:150_000],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the texts in")
    parser.add_argument("--only", default=",".join(MAKERS), help=f"comma-separated subset of {', '.join(MAKERS)}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only.split(","):
        path = args.out / f"{name}.txt"
        if not path.exists():
            text = MAKERS[name]()
            if not text.strip():
                print(f"{name}: nothing found on this machine", file=sys.stderr)
                continue
            path.write_text(text, encoding="utf-8")
        print(f"{path}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
