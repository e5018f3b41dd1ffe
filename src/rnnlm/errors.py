"""The exceptions a user can cause; the command line turns them into exit status 2, the server
into a 4xx answer."""

from __future__ import annotations

import re
from typing import Any, Callable

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z][a-z0-9_]*)\}")


class RnnlmError(Exception):
    """A mistake in the user's input (a path, a file, an option, a run folder).

    Its message is one line, meant to be read by the user as it is.
    """


class SettingError(RnnlmError):
    """A setting the library cannot take. ``field`` names it as the library does (a config
    field, a parameter); the message says why, and names every setting it mentions as a
    ``{field}`` placeholder, so that each edge spells them its own way: the command line as its
    flags (``--min-freq``), the server as its JSON fields. ``str()`` spells them as fields.
    Text that is not the library's own (a path, a value) goes into the message through
    ``literal``: its braces stay braces."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with each setting it names spelled by ``spell``."""
        return PLACEHOLDER.sub(lambda m: spell(m[1]) if m[1] else m[0][0], self.message)

    def __str__(self) -> str:
        return self.spelled(lambda field: field)


def literal(text: object) -> str:
    """``text`` as it stands in a SettingError's message: none of its braces is a placeholder."""
    return str(text).replace("{", "{{").replace("}", "}}")


def invalid(field: str, reason: str) -> SettingError:
    """``{field} reason``: the common shape, the setting first (``invalid("bs", "must be >= 1")``);
    ``reason`` is taken as it is (it names no other setting)."""
    return SettingError(field, f"{{{field}}} {literal(reason)}")


def in_context(error: RnnlmError, where: str) -> RnnlmError:
    """``error`` with ``where: `` before its message, still naming its setting."""
    if isinstance(error, SettingError):
        return SettingError(error.field, f"{literal(where)}: {error.message}")
    return RnnlmError(f"{where}: {error}")


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` for a message, cut short: a hostile file may hold a megabyte where a number belongs."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
