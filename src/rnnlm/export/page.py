"""One self-contained HTML page that writes with a run's model and no server: its weights, its
tokenizer and its forward pass in plain JavaScript, all inside the file (nothing fetched), so it
works opened from disk.

The page is ``static/export.html`` with ``static/export.css`` and ``static/export.js`` put inside
it, and the data as JSON in a ``<script type="application/json">`` (``script_json`` escapes what
could end it): the card, the model's shape, the tokenizer (``rnnlm.export.spec``) and the weights
(``rnnlm.export.weights``). The script writes the model's text with ``textContent`` only.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rnnlm.atomic import write_text
from rnnlm.errors import SettingError, invalid, literal
from rnnlm.export.outputs import check_new_file
from rnnlm.export.spec import model_spec, tokenizer_spec
from rnnlm.export.weights import FORMATS, Cost, compression_cost, encoded_weights, weight_bytes
from rnnlm.inspect.page import script_json
from rnnlm.runfolder import Run

MAX_PAGE_BYTES = 50_000_000  # a browser parses and holds a page this large in a few seconds
BASE64 = 4 / 3
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def static_text(name: str) -> str:
    return resources.files("rnnlm.export").joinpath("static", name).read_text(encoding="utf-8")


def check_page_output(run: Run, path: str | os.PathLike, fmt: str) -> Path:
    """Refuse, before any work, a format the page does not know, a path it cannot be written to,
    or a model whose weights would make the page too large."""
    if fmt not in FORMATS:
        raise invalid("weights", f"must be one of {', '.join(FORMATS)} (got {fmt!r})")
    path = check_new_file(path, "html")
    size = int(weight_bytes(run.model, fmt) * BASE64)
    if size > MAX_PAGE_BYTES:
        smaller = [f for f in FORMATS if weight_bytes(run.model, f) * BASE64 <= MAX_PAGE_BYTES]
        hint = f"; try {{weights}} {smaller[-1]}" if smaller else "; export it with {onnx} instead"
        raise SettingError("html", f"{{html}} {literal(run.folder)}: the model's {fmt} weights take "
                                   f"{size / 1e6:.1f} MB in a page, more than its limit of "
                                   f"{MAX_PAGE_BYTES / 1e6:.0f} MB{hint}")
    return path


def page_data(run: Run, fmt: str, cost: Cost) -> dict:
    """Everything the page's script reads."""
    return {"card": run.card(), "model": model_spec(run), "tokenizer": tokenizer_spec(run.tokenizer, run.vocab),
            "weights": {"format": fmt, "bytes": weight_bytes(run.model, fmt),
                        "fp32_bytes": weight_bytes(run.model, "fp32"), "tensors": encoded_weights(run.model, fmt)},
            "cost": {"bits_per_char": cost.bits_per_char, "compressed_bits_per_char": cost.compressed_bits_per_char,
                     "greedy_agree": cost.greedy_agree, "greedy_tokens": cost.greedy_tokens}}


def render_page(data: dict) -> str:
    values = {"title": html.escape(f"rnnlm: {data['card']['name']}"), "style": static_text("export.css"),
              "script": static_text("export.js"), "data": script_json(data)}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], static_text("export.html"))


@dataclass
class PageExport:
    path: Path
    bytes: int  # of the page
    format: str
    weight_bytes: int
    fp32_weight_bytes: int
    cost: Cost


def export_page(run: Run, out: str | os.PathLike, fmt: str = "fp16") -> PageExport:
    """Write the page of ``run`` (loaded on the CPU) to ``out``, weights in ``fmt``; what the
    compression costs is measured first and shown on the page."""
    path = check_page_output(run, out, fmt)
    cost = compression_cost(run, fmt)
    data = page_data(run, fmt, cost)
    text = render_page(data)
    write_text(path, text)
    return PageExport(path, len(text.encode("utf-8")), fmt, data["weights"]["bytes"], data["weights"]["fp32_bytes"],
                      cost)
