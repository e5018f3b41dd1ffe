"""The notebooks in notebooks/, run top to bottom in a real Jupyter kernel at their small scale
(RNNLM_NOTEBOOK_SMALL=1), and kept in the repository without outputs."""

import os
from pathlib import Path

import pytest
from conftest import TINY_TEXT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NIETZSCHE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"


def execute(name: str, **env: str) -> list[list[dict]]:
    """Run a notebook in a fresh kernel; the outputs of each code cell."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    saved = dict(os.environ)
    os.environ.update({"RNNLM_NOTEBOOK_SMALL": "1", **env})
    try:
        nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]


def shown(outputs: list[dict], kind: str) -> str:
    """What the cell displayed as ``kind`` (text/html, image/png) or printed, joined."""
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream" and kind == "text":
            parts.append(out["text"])
        parts.append(str(out.get("data", {}).get(kind, "")))
    return "".join(parts)


def test_the_notebooks_are_kept_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert len(names) >= 3
    for name in names:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name
        assert not any("rnnlm." in line and "import" in line and "._" in line
                       for c in code for line in c.source.splitlines()), f"{name} imports a private name"


def test_your_own_text_trains_writes_and_shows_what_it_did(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text(TINY_TEXT * 4)
    settings, finding, trained, written, looked = execute("03-your-own-text.ipynb", RNNLM_TEXT=str(text))
    assert shown(finding, "image/png") and "suggested rate" in shown(finding, "text")
    table = shown(trained, "text/html")
    assert '<table class="rnnlm">' in table and "valid_loss" in table  # the epoch table, as HTML
    assert "valid_loss" not in shown(trained, "text")  # and not printed as well
    assert "best valid_loss" in table and "data:image/png;base64," in table  # the result and its curve
    assert shown(written, "text").count("---") == 2
    page = shown(looked, "text/html")
    assert "<iframe" in page and "bits per character" in shown(looked, "text")


def test_human_numbers_lessons_and_rnnlm_model(tmp_path):
    lessons, trained, written, card = execute("02-human-numbers.ipynb")
    assert "Model0" in shown(lessons, "text") and "0.35" in shown(lessons, "text")  # beside the seed's number
    assert "best valid_loss" in shown(trained, "text/html")
    assert shown(written, "text").split()[0] in {"one", "two", "three", "four", "five", "six", "seven", "eight",
                                                 "nine", "ten", "thousand", "hundred", ","} or shown(written, "text")
    assert "parameters" in shown(card, "text/html")


@pytest.mark.skipif(not NIETZSCHE.is_file(), reason="needs ../shared/data/nietzsche.txt")
def test_the_nietzsche_lessons_step_by_step():
    outputs = execute("01-nietzsche-lessons.ipynb", RNNLM_NIETZSCHE=str(NIETZSCHE))
    table = shown(outputs[-1], "text")
    for name in ("Char3Model", "CharLoopModel", "CharRnn", "CharSeqStatefulRnn", "CharSeqStatefulGRU"):
        assert name in table
    assert "class CharLoopModel" in shown(outputs[2], "text")  # the model's code, as the lesson shows it
