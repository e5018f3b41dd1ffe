"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rnnlm.errors import RnnlmError, invalid
from rnnlm.reading import read_file


class WriteFailed(RnnlmError):
    """A file could not be written (a full disk, a read-only folder); the file it was to replace,
    if any, is unchanged."""


def check_writable(path: str | os.PathLike, field: str) -> None:
    """Refuse up front a file that ``write_bytes`` could not replace: a folder, or a path whose
    folder does not exist (say so before a long job, not after it). ``field``: the setting that
    names the file."""
    path = Path(path)
    if path.is_dir():
        raise invalid(field, f"{path}: is a folder; name a file")
    if not path.parent.is_dir():
        raise invalid(field, f"{path}: no folder {path.parent} to write it in")


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 less the umask (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteFailed(f"cannot write {path} ({e.strerror or e})") from None
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteFailed(f"cannot write {path} ({e.strerror or e})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log by rewriting it atomically (logs here are small: one line an epoch)."""
    path = Path(path)
    old = read_file(path) if path.exists() else b""
    write_bytes(path, old + line.rstrip("\n").encode("utf-8") + b"\n")
