"""Reading files that a stranger may have made: a run folder from the internet, a corpus path.

Only regular files are read: a named pipe would block forever, ``/dev/zero`` never ends, a
symbolic link loop never resolves; each gets one clear line instead. JSON files have a size
limit and nesting deep enough to exhaust Python's stack is refused like any other damage.
Nothing here unpickles.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from rnnlm.errors import RnnlmError

KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISSOCK, "a socket"))


def os_reason(path: str | os.PathLike, e: OSError, missing: str = "no such file or folder") -> RnnlmError:
    """One line for an OSError met while opening or reading ``path``; ``missing`` says what an
    absent file means."""
    if e.errno == errno.ENOENT:
        return RnnlmError(f"{path}: {'broken symbolic link' if Path(path).is_symlink() else missing}")
    if e.errno == errno.ELOOP:
        return RnnlmError(f"{path}: symbolic link loop")
    if e.errno == errno.ENAMETOOLONG:
        return RnnlmError(f"{str(path)[:80]}...: file name too long")
    return RnnlmError(f"{path}: cannot read ({e.strerror or e})")


def not_regular(path: str | os.PathLike, mode: int) -> RnnlmError | None:
    """The error for a path that is not a regular file (None when it is one)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return RnnlmError(f"{path}: is a folder, not a file")
    kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
    return RnnlmError(f"{path}: is {kind}, not a regular file; save the text to a file first")


def regular_file_size(path: str | os.PathLike, missing: str = "no such file or folder") -> int:
    """Size of ``path``, a regular file (symbolic links followed); RnnlmError for anything else."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise os_reason(path, e, missing) from None
    error = not_regular(path, info.st_mode)
    if error:
        raise error
    return info.st_size


def open_regular_file(path: str | os.PathLike, missing: str = "no such file or folder") -> BinaryIO:
    """A regular file opened for reading in binary. Opening never blocks (a named pipe is
    refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise os_reason(path, e, missing) from None
    f = os.fdopen(fd, "rb")
    error = not_regular(path, os.fstat(fd).st_mode)
    if error:
        f.close()
        raise error
    return f


def read_file(path: str | os.PathLike, limit: int | None = None, what: str = "file",
              missing: str = "no such file or folder") -> bytes:
    """The bytes of a regular file, at most ``limit`` of them (see ``open_regular_file``)."""
    with open_regular_file(path, missing) as f:
        info = os.fstat(f.fileno())
        if limit is not None and info.st_size > limit:
            raise RnnlmError(f"{path}: {info.st_size:,} bytes, too large for a {what} (at most {limit:,})")
        try:
            return f.read()
        except OSError as e:
            raise os_reason(path, e) from None


def parse_json(text: str | bytes, where: str, what: str) -> Any:
    """JSON from untrusted text; RnnlmError ("``where``: damaged ``what``") when it is not JSON or
    nests deep enough to exhaust the stack."""
    try:
        return json.loads(text)
    except RecursionError:
        raise RnnlmError(f"{where}: damaged {what} (JSON nested too deep)") from None
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError included
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RnnlmError(f"{where}: damaged {what} (not JSON: {reason[:200]})") from None


def read_json(path: str | os.PathLike, limit: int, what: str, missing: str = "no such file or folder") -> Any:
    """A JSON file of at most ``limit`` bytes."""
    return parse_json(read_file(path, limit, what, missing), str(path), what)
