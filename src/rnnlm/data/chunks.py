"""Reading a text file in bounded pieces, so a corpus larger than memory can be tokenized.

Joined, the pieces are exactly what ``read_text_file`` gives for the whole file: the same
encoding (a BOM dropped, or a UTF-16/32 BOM followed), the same ``errors`` handling, ``\\r\\n``
and ``\\r`` turned into ``\\n``, and the same refusals (a binary file is judged by the same first
characters). Every piece but the last ends just after a whitespace character (never a
``\\r``), so no multi-byte character, ``\\r\\n`` pair or word is cut in two, and tokenizing or
lower-casing piece by piece gives the same tokens as the whole text would. The one exception
is a run of more than ``MAX_CARRY`` characters without any whitespace, which is cut where the
limit falls to keep memory bounded.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterator

from rnnlm.data.corpus import (
    BINARY_PROBE,
    check_not_binary,
    decode_error,
    normalize_newlines,
    text_codec,
)
from rnnlm.reading import open_regular_file, os_reason

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


def read_chunks(
    path: Path, chunk_bytes: int = CHUNK_BYTES, encoding: str = "utf-8", errors: str = "strict"
) -> Iterator[str]:
    """Yield the text of ``path`` in pieces of about ``chunk_bytes`` bytes (see the module doc)."""
    with open_regular_file(path) as f:
        try:
            head = f.read(4 * BINARY_PROBE)  # enough bytes for BINARY_PROBE characters in any codec
            f.seek(0)
            codec = text_codec(head, encoding)
            judge_start(path, head, codec, encoding, errors)
            decoder = codecs.getincrementaldecoder(codec)(errors)
            carry, offset = "", 0
            while True:
                raw = f.read(chunk_bytes)
                final = not raw
                pending = len(decoder.getstate()[0])
                try:
                    text = carry + decoder.decode(raw, final)
                except UnicodeDecodeError as e:
                    raise decode_error(path, offset - pending + e.start, head, encoding) from None
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
        except OSError as e:
            raise os_reason(path, e) from None


def judge_start(path: Path, head: bytes, codec: str, encoding: str, errors: str) -> None:
    """Refuse a binary file from its first characters before any piece is given out."""
    try:
        text = codecs.getincrementaldecoder(codec)(errors).decode(head, len(head) < 4 * BINARY_PROBE)
    except UnicodeDecodeError as e:
        raise decode_error(path, e.start, head, encoding) from None
    check_not_binary(path, text, head, codec)
