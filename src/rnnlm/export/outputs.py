"""Where an export goes: checked before any work, written whole or not at all.

A page is one file (``rnnlm.atomic`` writes it beside its place and renames it); the ONNX export
is a folder, written under a temporary name beside its place and renamed into it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rnnlm.atomic import check_writable
from rnnlm.errors import SettingError, invalid, literal


def check_new_folder(path: str | os.PathLike, field: str) -> Path:
    """A folder the export may create: its parent exists, and it is not a file nor a folder that
    holds anything."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise invalid(field, f"{path}: is a file; name a new folder")
    if path.is_dir() and any(path.iterdir()):
        raise SettingError(field, f"{{{field}}} {literal(path)}: folder already holds files; name a new or "
                                  "empty folder")
    if not path.parent.is_dir():
        raise invalid(field, f"{path}: no folder {path.parent} to make it in")
    return path


def check_new_file(path: str | os.PathLike, field: str) -> Path:
    """A file the export may write: not a folder, in a folder that exists."""
    check_writable(path, field)
    return Path(path)


@contextmanager
def folder_into_place(out: Path, field: str) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; renamed to ``out`` when the block ends
    well, removed when it does not."""
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    try:
        tmp.mkdir()
    except OSError as e:
        raise invalid(field, f"{out}: cannot create folder ({e.strerror})") from None
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise invalid(field, f"{out}: cannot write ({e.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
