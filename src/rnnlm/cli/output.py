"""Text on its way to a terminal: errors kept to one line, generated text kept harmless."""

from __future__ import annotations

import sys
import unicodedata


def one_line(text: str) -> str:
    """``text`` with control characters escaped: a file name may hold a newline or a terminal
    escape sequence, and an error stays one harmless line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def for_terminal(text: str) -> str:
    """Generated text as it goes to stdout: on a terminal, control characters other than newline
    and tab are shown escaped, since a model (trained on hostile text, or from a stranger) can
    write an escape sequence the terminal would obey. Piped or redirected, text stays as it is."""
    if not sys.stdout.isatty():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" and c not in "\n\t" else c for c in text)
