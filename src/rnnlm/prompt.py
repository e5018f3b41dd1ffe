"""Reading a prompt from a file or standard input, as training text is read."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from rnnlm.config import check_encoding
from rnnlm.data.corpus import decode_text
from rnnlm.device import check_memory
from rnnlm.errors import RnnlmError
from rnnlm.reading import read_file, regular_file_size

BYTES_PER_PROMPT_BYTE = 16  # the bytes, the text (up to 4 a character) and its ids (8 each) at once
STDIN_LIMIT = 1 << 30  # bytes read from standard input, whose size is not known before


def read_prompt_file(path: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of ``path`` (``-``: standard input) decoded as a corpus file is (encodings, a
    byte order mark, binary files refused, ``\\r\\n`` read as ``\\n``). A file whose prompt would
    not fit in memory is refused before it is read."""
    check_encoding(encoding)
    if path == "-":
        data = sys.stdin.buffer.read(STDIN_LIMIT + 1)
        if len(data) > STDIN_LIMIT:
            raise RnnlmError(f"--prime-file -: more than {STDIN_LIMIT:,} bytes on standard input; save it to a file")
        where = Path("<stdin>")
    else:
        size = regular_file_size(path)
        check_memory(BYTES_PER_PROMPT_BYTE * size, torch.device("cpu"), f"--prime-file {path} ({size:,} bytes)",
                     "use a shorter prime")
        data, where = read_file(path), Path(path)
    text = decode_text(data, where, encoding, errors)
    if not text:
        raise RnnlmError(f"--prime-file {path}: is empty")
    return text
