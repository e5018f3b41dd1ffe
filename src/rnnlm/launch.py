"""What torchrun told this process, read from its environment without importing torch (the
command line asks before it knows whether the command needs torch at all)."""

from __future__ import annotations

import os

from rnnlm.errors import RnnlmError


def launched_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return env_int("WORLD_SIZE", 1)


def launched_rank() -> int:
    """This process's rank under torchrun (0 without torchrun)."""
    return env_int("RANK", 0)


def env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise RnnlmError(f"environment variable {name} must be a whole number (got {text[:40]!r})")
    return int(text)
