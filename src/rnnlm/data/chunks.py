"""Reading a text file in bounded pieces, so a corpus larger than memory can be tokenized.

Joined, the pieces are exactly what ``read_text_file`` gives for the whole file: BOM dropped,
``\\r\\n`` and ``\\r`` turned into ``\\n``, UTF-8 checked. Every piece but the last ends just after
a whitespace character (never a ``\\r``), so no multi-byte character, ``\\r\\n`` pair or word is
cut in two, and tokenizing or lower-casing piece by piece gives the same tokens as the whole
text would. The one exception is a run of more than ``MAX_CARRY`` characters without any
whitespace, which is cut where the limit falls to keep memory bounded.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterator

from rnnlm.data.corpus import BINARY_PROBE, binary_error, normalize_newlines, utf8_error
from rnnlm.errors import RnnlmError

CHUNK_BYTES = 256 << 10
MAX_CARRY = 1 << 20
BREAK = re.compile(r"[^\S\r]")  # whitespace a piece may end with


def last_break(text: str) -> int:
    """Length of the longest prefix of ``text`` that ends with whitespace other than ``\\r`` (0: none)."""
    at = max(text.rfind(" "), text.rfind("\n"))
    if at >= 0:
        return at + 1
    last = None
    for last in BREAK.finditer(text):
        pass
    return last.end() if last else 0


def read_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """Yield the text of ``path`` in pieces of about ``chunk_bytes`` bytes (see the module doc)."""
    try:
        f = path.open("rb")
    except IsADirectoryError:
        raise RnnlmError(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise RnnlmError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        if b"\x00" in f.read(BINARY_PROBE):
            raise binary_error(path)
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        carry, offset = "", 0
        while True:
            raw = f.read(chunk_bytes)
            final = not raw
            pending = len(decoder.getstate()[0])
            try:
                text = carry + decoder.decode(raw, final)
            except UnicodeDecodeError as e:
                raise utf8_error(path, offset - pending + e.start) from None
            offset += len(raw)
            if final:
                if text:
                    yield normalize_newlines(text)
                return
            cut = last_break(text)
            if cut == 0 and len(text) >= MAX_CARRY:
                cut = len(text) - text.endswith("\r")
            if cut:
                yield normalize_newlines(text[:cut])
            carry = text[cut:]
