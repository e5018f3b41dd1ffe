"""rnnlm in a Jupyter notebook: whether it runs in one, and the HTML its objects show there.

The course rnnlm implements is a set of notebooks. In one, the epoch table is an HTML table that
grows in place (not printed lines), the progress bar is tqdm's notebook bar, and the objects the
API returns (a training's result, the learning-rate finder's sweep, a scored text, a run) show
themselves: their ``_repr_html_`` or ``_repr_png_`` build on what is here. IPython is imported
only inside a notebook's kernel, where it is there already.
"""

from __future__ import annotations

import base64
import html
import sys
from pathlib import Path
from typing import Any, Sequence


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (a display there shows HTML), not a terminal or a
    plain script."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def png_html(png: bytes | Path, alt: str = "") -> str:
    """An ``<img>`` holding a PNG (bytes, or a file) inline, as the notebook saves it."""
    data = png.read_bytes() if isinstance(png, Path) else png
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="rnnlm"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page_frame(page: str, height: int = 480) -> str:
    """A whole HTML page (its script and style inline) shown in a notebook: in a sandboxed
    ``<iframe>``, so that its script and style stay its own."""
    return (f'<iframe sandbox="allow-scripts" style="width: 100%; height: {height}px; border: 0" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')


class LiveTable:
    """An HTML table in a notebook's output that grows a row at a time, updated in place."""

    def __init__(self, columns: Sequence[str]):
        from IPython.display import HTML, display

        self.columns, self.rows = list(columns), []
        self.handle = display(HTML(table_html(self.columns, self.rows)), display_id=True)

    def add(self, row: Sequence[Any]) -> None:
        from IPython.display import HTML

        self.rows.append(list(row))
        self.handle.update(HTML(table_html(self.columns, self.rows)))
