"""The HTML page of a scoring: one self-contained file (its CSS, script and data inline, nothing
fetched), every character coloured by its surprisal or by a hidden unit, the top predictions
on hover.

The page is ``static/score.html`` with ``static/score.css`` and ``static/score.js`` put inside
it; the script draws any document of ``rnnlm.inspect.document`` (``rnnlmScore.render(element,
doc)``), so a server can serve the same two files and draw what its score endpoint returns.
The text is untrusted: the data travels as JSON inside a ``<script type="application/json">``
with ``<``, ``>`` and ``&`` escaped, and the script writes it with ``textContent`` only.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources

from rnnlm.atomic import check_writable, write_text
from rnnlm.errors import invalid

MAX_PAGE_CHARS = 300_000  # characters of text a page shows at most (a browser draws a span for each)
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def static_text(name: str) -> str:
    """A file of the page, as shipped in the package."""
    return resources.files("rnnlm.inspect").joinpath("static", name).read_text(encoding="utf-8")


def script_json(obj: object) -> str:
    """JSON that cannot end the ``<script>`` element it sits in, whatever strings it holds."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(doc: dict) -> str:
    """The page for a document of ``rnnlm.inspect.document``."""
    values = {"title": html.escape(f"rnnlm score: {doc.get('run', '')}"), "style": static_text("score.css"),
              "script": static_text("score.js"), "data": script_json(doc)}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], static_text("score.html"))


def check_page(path: str | os.PathLike, characters: int) -> None:
    """Refuse, before any work, a page that could not be written or would be too long to draw."""
    check_writable(path, "html")
    if characters > MAX_PAGE_CHARS:
        raise invalid("html", f"draws at most {MAX_PAGE_CHARS:,} characters (the text has {characters:,}); "
                              "score a part of it")


def write_page(path: str | os.PathLike, doc: dict) -> None:
    """Write the page atomically: the file is whole or not there."""
    write_text(path, render_page(doc))
