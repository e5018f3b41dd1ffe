"""Text on its way to a terminal: errors kept to one line with the library's settings spelled as
the command's options, generated text kept harmless.

The library names a setting by its field (``min_freq``, ``cell``, ``max_tokens``); a command's
error line names the option the user typed (``--min-freq``, ``--model``, ``-n``), found in the
command's own parser."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from typing import Callable, Mapping, Sequence

from rnnlm.errors import RnnlmError, SettingError


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


COMMON_FIELDS = {"source": "data"}  # library field -> the dest of the option that sets it, where they differ
LAUNCHER_OPTIONS = {"nproc_per_node": "--nproc_per_node"}  # settings of torchrun, which starts rnnlm train


def option_spellings(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each dest of ``parser`` as the user writes it: its longest option string (``--model``), or
    a positional's metavar (``DATA``)."""
    spellings = {}
    for action in parser._actions:
        if action.dest == argparse.SUPPRESS:
            continue
        if action.option_strings:
            spellings[action.dest] = max(action.option_strings, key=len)
        else:
            spellings[action.dest] = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return spellings


def flag_speller(parser: argparse.ArgumentParser, fields: Mapping[str, str] = {}) -> Callable[[str], str]:
    """A function from a library field to the option of ``parser`` that sets it; ``fields`` maps
    the fields whose option has another dest (``{"max_tokens": "n"}``). A field no option sets is
    spelled as a flag would be (``--max-size``)."""
    spellings = option_spellings(parser)
    aliases = {**COMMON_FIELDS, **fields}

    def spell(field: str) -> str:
        dest = aliases.get(field, field)
        return spellings.get(dest) or LAUNCHER_OPTIONS.get(field) or "--" + field.replace("_", "-")

    return spell


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand of ``parser``."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def typed_dests(parser: argparse.ArgumentParser, command: str, argv: Sequence[str] | None) -> frozenset[str]:
    """The dests of the options and arguments of ``command`` that ``argv`` typed, even at their
    default value (argparse keeps no record: the command line is read again, its defaults
    suppressed)."""
    actions = command_parser(parser, command)._actions
    defaults = [action.default for action in actions]
    try:
        for action in actions:
            action.default = argparse.SUPPRESS
        typed = parser.parse_args(argv)
    finally:
        for action, default in zip(actions, defaults):
            action.default = default
    return frozenset(vars(typed))


def error_text(error: RnnlmError, spell: Callable[[str], str]) -> str:
    """An error's message as the command line says it: settings spelled as its options."""
    return error.spelled(spell) if isinstance(error, SettingError) else str(error)
