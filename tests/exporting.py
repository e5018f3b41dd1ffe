"""Helpers of the export tests: three tiny runs trained once per session, one for each cell and
level (with the options that change the model's layout: layers, locked dropout, tied weights,
dropout between fused layers), and the Chromium the browser tests drive."""

from __future__ import annotations

import io
import os
from pathlib import Path

from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.runfolder import load_run
from rnnlm.train.run import train
from tests.conftest import TINY_TEXT

CHROMIUM = "/usr/bin/chromium"
MIXED_TEXT = TINY_TEXT + "Don't stop: 42 cafés, 3.5 naïve ideas — it's “fine”!\n\tA new line,  two  spaces. " * 20
RUNS = {  # name: (data, model)
    "lstm-char": (DataConfig(level="char"), ModelConfig(cell="lstm", layers=2, emb=16, hidden=32, dropout=0.2)),
    "gru-word": (DataConfig(level="word"), ModelConfig(cell="gru", layers=1, emb=24, hidden=24, dropout=0.0, tie=True)),
    "rnn-bpe": (DataConfig(level="bpe", vocab_size=300),
                ModelConfig(cell="rnn", layers=2, emb=16, hidden=32, dropout=0.1, locked_dropout=True)),
}
_trained: dict[str, Path] = {}


def trained_run(name: str, root: Path) -> Path:
    """The run ``name`` of ``RUNS``, trained on ``MIXED_TEXT`` the first time it is asked for."""
    if name not in _trained:
        data, model = RUNS[name]
        corpus = root / "mixed.txt"
        corpus.write_text(MIXED_TEXT, encoding="utf-8")
        data = DataConfig(**{**data.__dict__, "source": str(corpus)})
        config = RunConfig(data, model, TrainConfig(bs=8, bptt=16, epochs=3, lr=1e-2, seed=0, device="cpu"))
        _trained[name] = train(config, root / name, log=io.StringIO(), progress=False).folder
    return _trained[name]


def loaded_runs(tmp_path_factory) -> dict:
    """Every run of ``RUNS``, trained (once a session) and loaded on the CPU, by name."""
    root = tmp_path_factory.getbasetemp() / "export-runs"
    root.mkdir(exist_ok=True)
    return {name: load_run(trained_run(name, root), device="cpu") for name in RUNS}


def chromium_or_skip():
    """Playwright's sync API, or a skip where it or Debian's Chromium is missing."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api")
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    return sync_api
