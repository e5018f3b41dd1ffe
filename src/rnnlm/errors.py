"""The one exception type a user can cause; the command line turns it into exit status 2."""

from __future__ import annotations

from typing import Any


class RnnlmError(Exception):
    """A mistake in the user's input (a path, a file, an option, a run folder).

    Its message is one line, meant to be read by the user as it is.
    """


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` for a message, cut short: a hostile file may hold a megabyte where a number belongs."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
