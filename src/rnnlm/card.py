"""A run's card: what it learned from, its size, and how well it did (its best validation, from
metrics.jsonl, read again when it changes: a run may still be training). The server's
/v1/models and playground show it, and a run shows it in a notebook."""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlm.errors import RnnlmError
from rnnlm.models.recurrent import parameter_count
from rnnlm.notebook import png_html, table_html
from rnnlm.reading import read_file

if TYPE_CHECKING:
    from rnnlm.runfolder import Run

METRICS_LIMIT = 16 << 20  # bytes of metrics.jsonl read at most (one line per epoch: far more than any run needs)


@dataclass
class MetricsFile:
    """A run's metrics.jsonl, read again only when it has changed (a run may still be training)."""

    path: Path
    stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the version read
    rows: list[dict] = field(default_factory=list)

    def read(self) -> list[dict]:
        try:
            info = os.stat(self.path)
        except OSError:
            self.stamp, self.rows = None, []
            return self.rows
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self.stamp:
            try:
                data = read_file(self.path, METRICS_LIMIT, "metrics file")
            except RnnlmError:
                data = b""
            self.rows = parse_metrics(data)
            self.stamp = stamp
        return self.rows

    @property
    def updated(self) -> float | None:
        return None if self.stamp is None else self.stamp[0] / 1e9


def parse_metrics(data: bytes) -> list[dict]:
    """The epochs of a metrics.jsonl: numbers only (anything else in a line is dropped), lines that
    are not JSON objects skipped (the last one may be half written while a run trains)."""
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            rows.append({k: v for k, v in obj.items() if isinstance(k, str) and len(k) <= 40
                         and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)})
    return rows


def model_card(run: Run, rows: list[dict]) -> dict[str, Any]:
    """The card of ``run`` whose metrics.jsonl holds ``rows``: data, level, sizes, the best
    validation loss."""
    config, vocab_size = run.config, len(run.vocab)
    scored = [r for r in rows if "valid_loss" in r]
    best = min(scored, key=lambda r: r["valid_loss"]) if scored else None
    # "bpc" is bits per character in rows that also hold "bits_per_token"; before that it was
    # bits per token, the same number at character level only
    per_char = best is not None and ("bits_per_token" in best or run.tokenizer.level == "char")
    ft = config.fine_tune
    return {
        "name": run.name,
        "data": data_name(config.data.source),
        "level": run.tokenizer.level,
        "vocab_size": vocab_size,
        "parameters": parameter_count(vocab_size, config.model),
        "cell": config.model.cell,
        "layers": config.model.layers,
        "emb": config.model.emb,
        "hidden": config.model.hidden,
        "epochs": len(rows),
        "best_valid_loss": None if best is None else best["valid_loss"],
        "best_bits_per_char": best.get("bpc") if per_char else None,
        "best_epoch": None if best is None else best.get("epoch"),
        "documents": run.tokenizer.documents,  # a list: a completion is one item, with its verdict
        # a fine-tuned run (--init-from): the run it started from, what that one learnt from, and
        # the runs before it, nearest first
        "base": ft.base_name if ft else None,
        "base_data": data_name(ft.base_data) if ft and ft.base_data else None,
        "base_chain": [Path(f).name for f in ft.base_chain] if ft and ft.base_chain else None,
    }


def data_name(source: str) -> str:
    """A corpus as a card names it: a file or folder by its name, a built-in dataset as it is."""
    return Path(source).name if os.sep in source or Path(source).suffix else source


def card_html(card: dict[str, Any], plot: Path | None = None) -> str:
    """A card as a notebook shows it: a table of its fields, and the loss curve when there is one."""
    shown = {float: "{:,.4f}", int: "{:,}"}
    rows = [(name.replace("_", " "), shown.get(type(value), "{}").format(value))
            for name, value in card.items() if value is not None]
    picture = png_html(plot, "loss curve") if plot is not None and plot.is_file() else ""
    return f"<div><b>{html.escape(str(card.get('name', '')))}</b>{table_html(('', ''), rows)}{picture}</div>"
