"""The runs a server holds: found from the command line's folders, loaded once, described.

A model's id is its run folder's name. Requests name a model by that id and nothing else: the
folders are fixed when the server starts, so no request can point the server at a file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rnnlm.errors import RnnlmError, shown
from rnnlm.generation.session import GenerationSession
from rnnlm.models.recurrent import parameter_count
from rnnlm.reading import read_file
from rnnlm.runfolder import CONFIG, METRICS

METRICS_LIMIT = 16 << 20  # bytes of metrics.jsonl read at most (one line per epoch: far more than any run needs)


def find_runs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Run folders from the command line: each path is a run folder (it holds config.json) or a
    folder of them (its subfolders that hold one, in name order)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise RnnlmError(f"{path}: {'is a file, not a run folder' if path.exists() else 'no such run folder'}")
        if (path / CONFIG).exists():
            found.append(path)
            continue
        runs = sorted(p for p in path.iterdir() if p.is_dir() and (p / CONFIG).exists())
        if not runs:
            raise RnnlmError(f"{path}: neither a run folder (no {CONFIG}) nor a folder of runs")
        found.extend(runs)
    names: dict[str, Path] = {}
    for run in found:
        if run.name in names and names[run.name].resolve() != run.resolve():
            raise RnnlmError(f"two runs are named {run.name!r} ({names[run.name]} and {run}); a model's id is its "
                             "folder's name, so serve one of them or rename a folder")
        names[run.name] = run
    return list(names.values())


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


@dataclass
class ServedModel:
    """One loaded run: its id, its generation session and what the page shows about it."""

    id: str
    session: GenerationSession
    created: int  # seconds since the epoch: when the run folder's weights were written
    metrics: MetricsFile

    @classmethod
    def load(cls, folder: Path, device: str = "auto") -> ServedModel:
        session = GenerationSession.load(folder, device=device)
        created = int(os.stat(folder / CONFIG).st_mtime)
        return cls(folder.name, session, created, MetricsFile(folder / METRICS))

    @property
    def description(self) -> str:
        """Its id, level and cell: ``demo (word, lstm)``."""
        run = self.session.run
        return f"{self.id} ({run.tokenizer.level}, {run.config.model.cell})"

    def card(self) -> dict:
        """The model card: data, level, sizes, the best validation loss (from metrics.jsonl)."""
        run = self.session.run
        config, vocab_size = run.config, len(run.vocab)
        rows = self.metrics.read()
        scored = [r for r in rows if "valid_loss" in r]
        best = min(scored, key=lambda r: r["valid_loss"]) if scored else None
        # "bpc" is bits per character in rows that also hold "bits_per_token"; before that it was
        # bits per token, the same number at character level only
        per_char = best is not None and ("bits_per_token" in best or run.tokenizer.level == "char")
        source = config.data.source
        return {
            "name": run.name,
            "data": Path(source).name if os.sep in source or Path(source).suffix else source,
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
            "device": str(run.device),
            "documents": run.tokenizer.documents,  # a list: a completion is one item, with its verdict
        }


def load_models(paths: Sequence[str | os.PathLike], device: str = "auto") -> dict[str, ServedModel]:
    """Every run the paths name, loaded (any that does not load stops the server before it starts)."""
    models = {}
    for folder in find_runs(paths):
        try:
            models[folder.name] = ServedModel.load(folder, device)
        except RnnlmError as e:
            message = str(e)
            raise RnnlmError(message if str(folder) in message else f"{shown(str(folder), 200)}: {message}") from None
    return models
