"""Documents of a list: the items of a text (one a line, or the pieces between separator lines)
and the random split of a corpus of items into training and validation documents.

A list (names, titles, one-line jokes, fortune files) is many short documents, each framed by
the boundary token ``xxbos`` when it is encoded (``rnnlm.data.tokenizers.encode_documents``),
so that a model learns where an item ends. Its held-out part is documents drawn at random with a
fixed seed, not its tail: a list is often sorted, and its last fifth would be a biased sample.
Both splits come back shuffled by the same draw, so that a sorted list is not read in order
either (in order, the previous item tells much of the next one).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rnnlm.config import MAX_VALID_DOCS
from rnnlm.errors import SettingError, literal

MAX_ITEM_CHARS = 10_000  # characters of one item: a longer line is not an item of a list
SPLIT_SEED = 0  # the draw of the held-out documents; fixed, so that runs with other seeds compare


def item_lines(text: str, where: str) -> list[str]:
    """Every non-empty line of ``text``, its trailing whitespace stripped (``--lines``)."""
    items = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip()
        if len(line) > MAX_ITEM_CHARS:
            raise SettingError("lines", f"{literal(where)}: line {number:,} has {len(line):,} characters, more than "
                                        f"the {MAX_ITEM_CHARS:,} an item of {{lines}} may have (is it a list, one "
                                        "item a line?)")
        if line:
            items.append(line)
    return items


def separated_pieces(text: str, separator: str, where: str) -> tuple[list[str], int]:
    """The documents between lines equal to ``separator`` (trailing whitespace aside), each with
    its blank lines at the start and end and every line's trailing whitespace stripped; and how
    many separator lines there were (``--doc-sep``)."""
    items: list[str] = []
    lines: list[str] = []
    seps, first, too_long, separator = 0, 1, None, separator.rstrip()

    def close() -> None:
        nonlocal too_long
        item = "\n".join(lines).strip("\n")
        if len(item) > MAX_ITEM_CHARS and too_long is None:
            too_long = (first, len(item))
        if item:
            items.append(item)
        lines.clear()

    numbered = text.split("\n")
    for number, line in enumerate(numbered, 1):
        line = line.rstrip()
        if line == separator:
            close()
            seps, first = seps + 1, number + 1
        else:
            lines.append(line)
    close()
    if too_long is not None:
        if seps == 0:
            raise never_occurs(where, separator, line_count(text))
        raise SettingError("doc_sep", f"{literal(where)}: the document at line {too_long[0]:,} has {too_long[1]:,} "
                                      f"characters, more than the {MAX_ITEM_CHARS:,} a document of {{doc_sep}} may have")
    return items, seps


def line_count(text: str) -> int:
    """Lines of ``text``, the last one counted whether or not a newline ends it."""
    return text.count("\n") + (not text.endswith("\n"))


def never_occurs(where: str, separator: str, lines: int) -> SettingError:
    return SettingError("doc_sep", f"{literal(where)}: no line is {{doc_sep}} {literal(repr(separator))} in the "
                                   f"{lines_read(lines)}; is that the separator of its documents?")


def lines_read(count: int) -> str:
    return f"{count:,} line{'' if count == 1 else 's'} read"


def split_items(texts: Sequence[tuple[str, str]], lines: bool, separator: str | None) -> list[str]:
    """The documents of ``texts`` (``(name, text)`` of each file), one a line or between separator
    lines, in order; a clear error when there is none, or the separator never occurs."""
    items: list[str] = []
    seps = read = 0
    for where, text in texts:
        if lines:
            items += item_lines(text, where)
        else:
            found, count = separated_pieces(text, separator, where)
            items.extend(found)
            seps += count
        read += line_count(text)
    names = ", ".join(name for name, _ in texts[:3]) + (", ..." if len(texts) > 3 else "")
    if separator is not None and seps == 0:
        raise never_occurs(names, separator.rstrip(), read)
    if not items:
        what = "no non-empty line" if lines else "only separator and blank lines"
        raise SettingError("lines" if lines else "doc_sep", f"{literal(names)}: has {what} ({lines_read(read)}), so no "
                                                            "document to train on")
    return items


def held_out_count(documents: int, valid_frac: float, valid_docs: int | None) -> int:
    """How many of ``documents`` are held out: ``valid_docs``, or ``valid_frac`` of them, at most
    ``MAX_VALID_DOCS``; at least one, and one left to train on."""
    if documents < 2:
        raise SettingError("lines", f"{{lines}}/{{doc_sep}}: {documents} document; a split needs at least 2")
    if valid_docs is not None and valid_docs >= documents:
        raise SettingError("valid_docs", f"{{valid_docs}} {valid_docs}: the corpus has {documents:,} documents; "
                                         "hold out fewer, so that some are left to train on")
    count = valid_docs if valid_docs is not None else min(MAX_VALID_DOCS, round(valid_frac * documents))
    return min(max(count, 1), documents - 1)


def random_split(docs: Sequence[str], held_out: int, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """``held_out`` documents drawn at random (``seed``) for validation, the rest for training;
    each split in the order of the draw."""
    order = np.random.default_rng(seed).permutation(len(docs))
    return [docs[i] for i in order[held_out:]], [docs[i] for i in order[:held_out]]


def shuffled(docs: Sequence[str], seed: int = SPLIT_SEED) -> list[str]:
    """``docs`` in a fixed random order (a validation list given as its own file)."""
    return [docs[i] for i in np.random.default_rng(seed).permutation(len(docs))]
