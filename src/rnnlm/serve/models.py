"""The runs a server holds: found from the command line's folders, loaded once, described.

A model's id is its run folder's name. Requests name a model by that id and nothing else: the
folders are fixed when the server starts, so no request can point the server at a file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rnnlm.card import MetricsFile, model_card
from rnnlm.errors import RnnlmError, shown
from rnnlm.generation.session import GenerationSession
from rnnlm.runfolder import CONFIG, METRICS


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
        """The model card (``rnnlm.card``), and the device that serves it."""
        run = self.session.run
        return {**model_card(run, self.metrics.read()), "device": str(run.device)}


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
